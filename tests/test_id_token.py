"""id_token verification (OIDC Core §3.1.3.7, RFC 8725) with locally generated keys."""

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import nbauth
from nbauth._jwt import unverified_claims, verify_id_token

ISS = "https://idp.example/realms/demo"
CLIENT = "jupyter"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk_of(key, kid, alg):
    public = key.public_key()
    algo = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    out = json.loads(algo.to_jwk(public))
    out.update(kid=kid, use="sig", alg=alg)
    return out


JWKS = {"keys": [jwk_of(RSA_KEY, "rsa-1", "RS256"), jwk_of(EC_KEY, "ec-1", "ES256")]}


def make(claims=None, *, key=RSA_KEY, alg="RS256", kid="rsa-1", **overrides):
    now = int(time.time())
    payload = {"iss": ISS, "aud": CLIENT, "sub": "user-1", "iat": now, "exp": now + 300, "nonce": "n1"}
    payload.update(claims or {})
    for k, v in overrides.items():
        if v is None:
            payload.pop(k, None)
        else:
            payload[k] = v
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def verify(token, **kw):
    args = {"jwks": JWKS, "issuer": ISS, "client_id": CLIENT, "nonce": "n1", "now": time.time()}
    args.update(kw)
    return verify_id_token(token, **args)


def test_valid_rs256_and_es256():
    assert verify(make())["sub"] == "user-1"
    assert verify(make(key=EC_KEY, alg="ES256", kid="ec-1"))["sub"] == "user-1"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"iss": "https://evil.example"}, "issuer"),
        ({"aud": "other-client"}, "another client"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nonce": "replayed"}, "nonce"),
        ({"exp": None}, "invalid"),
        ({"iat": int(time.time()) + 3600}, "future"),
    ],
)
def test_claim_checks(overrides, match):
    with pytest.raises(nbauth.VerificationError, match=match):
        verify(make(**overrides))


def test_several_audiences_need_azp():
    with pytest.raises(nbauth.VerificationError, match="azp"):
        verify(make(aud=[CLIENT, "other"]))
    assert verify(make(aud=[CLIENT, "other"], azp=CLIENT))["azp"] == CLIENT


def test_sub_must_not_change_on_refresh():
    with pytest.raises(nbauth.VerificationError, match="sub changed"):
        verify(make(), expected_sub="someone-else")


def test_signature_from_another_key_fails():
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(nbauth.VerificationError, match="signature"):
        verify(make(key=other))


def test_alg_none_refused():
    def seg(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": ISS, "aud": CLIENT, "sub": "x", "iat": now, "exp": now + 60, "nonce": "n1"}
    unsigned = f"{seg({'alg': 'none', 'kid': 'rsa-1'})}.{seg(claims)}."
    with pytest.raises(nbauth.VerificationError, match="not accepted"):
        verify(unsigned)


def test_key_confusion_hs256_with_public_key_refused():
    # classic attack: sign HS256 with the RSA public key's PEM as the HMAC secret
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    forged_payload = {"iss": ISS, "aud": CLIENT, "sub": "admin", "iat": now, "exp": now + 60, "nonce": "n1"}
    import hashlib
    import hmac

    def seg(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    signing_input = f"{seg({'alg': 'HS256', 'kid': 'rsa-1'})}.{seg(forged_payload)}"
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(nbauth.VerificationError, match="not accepted"):
        verify(f"{signing_input}.{sig.decode()}")


def test_alg_must_match_key_type():
    # an ES256 header pointing at the RSA key's kid: no key fits -> KeyError (caller refetches, then fails)
    token = make(key=EC_KEY, alg="ES256", kid="rsa-1")
    with pytest.raises(KeyError):
        verify(token)


def test_unknown_kid_asks_for_a_jwks_refetch():
    with pytest.raises(KeyError):
        verify(make(kid="rotated-key"))


def test_garbage_is_a_verification_error():
    for junk in ("", "a.b", "a.b.c", "x" * 100_000):
        with pytest.raises(nbauth.VerificationError):
            verify(junk)


def test_unverified_claims_are_only_for_timing():
    assert unverified_claims(make())["sub"] == "user-1"
    assert unverified_claims("opaque-token") is None
    assert unverified_claims("a.!!!.c") is None
