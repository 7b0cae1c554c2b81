// protocols.js - issue 14's protocol pieces for the loopback IdP (imported by server.js):
// JWT client authentication (private_key_jwt, client_secret_jwt: RFC 7523 s2.2, OIDC Core s9),
// DPoP (RFC 9449, with server nonces on request), token exchange (RFC 8693, a custom grant) and a
// second resource server for exchanged tokens (RFC 8707). FOR TESTS ONLY.
//
// Settings (environment):
//   IDP_DPOP_NONCE=1     every DPoP proof must carry a server nonce (use_dpop_nonce + DPoP-Nonce first)
//   IDP_DPOP_NONCE=loop  a misbehaving server: every token request with a DPoP proof answers
//                        use_dpop_nonce with a fresh nonce, forever (clients must give up); each such
//                        answer counts `dpop_nonce_loop` in /_admin/stats
//   IDP_DPOP=off        DPoP disabled: proofs are ignored and every token is Bearer
//   IDP_HUB_REDIRECT_URIS=http://127.0.0.1:8000/hub/oauth_callback  redirect URIs of `hub-client` (JupyterHub)
//   IDP_EXCHANGE_AUDIENCES=urn:demo:downstream,urn:demo:api  targets a token exchange may ask for
import crypto from 'node:crypto';

import { createLocalJWKSet, jwtVerify } from 'jose';
import { errors } from 'oidc-provider';
import validateDpop from 'oidc-provider/lib/helpers/validate_dpop.js';

const env = process.env;
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
let signingJwks;
export function keepJwks(jwks) { // the IdP's own signing keys, public half
  signingJwks = createLocalJWKSet({ keys: jwks.keys.map(({ d, p, q, dp, dq, qi, ...pub }) => pub) }); // eslint-disable-line no-unused-vars
  return jwks;
}

// RFC 8693 subject_token_type jwt (a "federated" token, like a Kubernetes service-account token): here a
// JWT signed by this IdP (an id_token or a JWT access token) stands for the federation's trusted issuer.
async function federatedSubject(provider, client, token) {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, signingJwks, { issuer: provider.issuer }));
  } catch (err) {
    throw new errors.InvalidGrant(`the token is not a valid JWT of a trusted issuer (${err.code ?? err.message})`);
  }
  if (!payload.sub) throw new errors.InvalidGrant('the token has no sub');
  const grant = new provider.Grant({ accountId: payload.sub, clientId: client.clientId });
  return { accountId: payload.sub, grantId: await grant.save(), clientId: payload.azp ?? payload.client_id, grant };
}
export const DOWNSTREAM_RESOURCE = 'urn:demo:downstream';
const DPOP_NONCE = (env.IDP_DPOP_NONCE || '').toLowerCase();
const EXCHANGE_AUDIENCES = (env.IDP_EXCHANGE_AUDIENCES || `${DOWNSTREAM_RESOURCE},urn:demo:api`)
  .split(',').map((s) => s.trim()).filter(Boolean);
export const HMAC_SECRET = 'hmac-client-secret-0123456789abcdef-0123456789';

// ---- client keys: generated at startup; the private JWKs are served by GET /_admin/client-keys
function keyPair(alg) {
  const { privateKey } = alg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = `client-${alg.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`;
  const priv = { ...privateKey.export({ format: 'jwk' }), alg, kid, use: 'sig' };
  const { d, p, q, dp, dq, qi, ...pub } = priv; // eslint-disable-line no-unused-vars
  return { priv, pub };
}
const CLIENT_KEYS = [keyPair('ES256'), keyPair('RS256')];

export function clientKeys() {
  return { keys: CLIENT_KEYS.map((k) => k.priv) };
}

export function protocolClients(deviceGrant, passwordGrant) {
  const user = ['refresh_token', passwordGrant, deviceGrant];
  return [
    { // RFC 7523 / OIDC Core s9 private_key_jwt: a registered JWKS, no secret
      client_id: 'jwt-client', token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: CLIENT_KEYS.map((k) => k.pub) },
      grant_types: ['client_credentials', ...user, TOKEN_EXCHANGE, JWT_BEARER], response_types: [], redirect_uris: [],
    },
    { // client_secret_jwt: an HS256 assertion made with the shared secret
      client_id: 'hmac-client', client_secret: HMAC_SECRET, token_endpoint_auth_method: 'client_secret_jwt',
      grant_types: ['client_credentials', ...user], response_types: [], redirect_uris: [],
    },
    { // RFC 9449 s5.2: every access token of this client must be DPoP-bound
      client_id: 'dpop-client', application_type: 'native', token_endpoint_auth_method: 'none',
      dpop_bound_access_tokens: true,
      grant_types: ['authorization_code', ...user], response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback', 'http://localhost/callback'],
    },
    { // JupyterHub's GenericOAuthenticator (tests/hub): IDP_HUB_REDIRECT_URIS=<hub>/hub/oauth_callback,...
      client_id: 'hub-client', client_secret: 'hub-secret', token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      redirect_uris: (env.IDP_HUB_REDIRECT_URIS || 'http://127.0.0.1:8000/hub/oauth_callback').split(','),
    },
    { // RFC 8693: may exchange a subject token for a downstream API's token
      client_id: 'exchange-client', client_secret: 'exchange-secret', token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials', ...user, TOKEN_EXCHANGE, JWT_BEARER], response_types: [], redirect_uris: [],
    },
  ];
}

export function dpopFeature() {
  if (/^(0|off|false|no)$/i.test(env.IDP_DPOP || '')) return { enabled: false }; // proofs ignored, Bearer tokens
  if (DPOP_NONCE === '1' || DPOP_NONCE === 'true' || DPOP_NONCE === 'on') {
    return { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true };
  }
  return { enabled: true };
}

export function resourceServerInfo(resourceIndicator) {
  if (resourceIndicator === DOWNSTREAM_RESOURCE) {
    return { scope: 'downstream:read downstream:write', audience: DOWNSTREAM_RESOURCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
  }
  return undefined;
}

// DPoP binding for the custom grants (password, token exchange): what the built-in grants do.
// Refresh tokens of public clients are bound too (RFC 9449 s5); a confidential client's are not.
export async function bindDpop(provider, ctx, token, refreshToken) {
  const dPoP = await validateDpop(provider, ctx);
  // invalid_dpop_proof (as Keycloak answers), not oidc-provider's invalid_grant whose description is hidden
  if (!dPoP && ctx.oidc.client.dpopBoundAccessTokens) throw new errors.InvalidDpopProof('DPoP proof JWT not provided');
  if (dPoP) {
    const unique = await provider.ReplayDetection.unique(ctx.oidc.client.clientId, dPoP.jti, Math.floor(Date.now() / 1000) + 300);
    if (!unique) throw new errors.InvalidGrant('DPoP proof JWT Replay detected');
    token.setThumbprint('jkt', dPoP.thumbprint);
    if (refreshToken && ctx.oidc.client.clientAuthMethod === 'none') refreshToken.jkt = dPoP.thumbprint;
  }
  return dPoP;
}

async function findSubject(provider, value) {
  return (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
}

// RFC 8693 s2.1: exchange a valid access token for one meant for `resource` / `audience`.
export function registerTokenExchange(provider, getResourceServerInfo, splitScope) {
  provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
    const { client, params } = ctx.oidc;
    if (!params.subject_token || !params.subject_token_type) {
      throw new errors.InvalidRequest('missing required parameter(s) (subject_token, subject_token_type)');
    }
    if (![ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE].includes(params.subject_token_type)) {
      throw new errors.InvalidRequest(`unsupported subject_token_type (${ACCESS_TOKEN_TYPE} or ${JWT_TOKEN_TYPE})`);
    }
    if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest('unsupported requested_token_type');
    }
    const federated = params.subject_token_type === JWT_TOKEN_TYPE;
    const subject = federated ? await federatedSubject(provider, client, params.subject_token)
      : await findSubject(provider, params.subject_token);
    if (!subject || subject.isExpired) throw new errors.InvalidGrant('subject_token is invalid or expired');
    const targets = [params.resource, params.audience].flat().filter(Boolean);
    if (targets.length > 1 && new Set(targets).size > 1) throw new errors.InvalidTarget('only one target (resource / audience) is supported');
    await issueFor(provider, ctx, subject, targets[0], TOKEN_EXCHANGE, { act: { sub: client.clientId }, subject_client: subject.clientId },
      { getResourceServerInfo, splitScope, federated });
  }, ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'audience', 'resource', 'scope'], ['audience', 'resource']);
}

// The access token of a token exchange or a jwt-bearer grant: for `target`, with the requested scopes it offers.
async function issueFor(provider, ctx, subject, requestedTarget, gty, extra, { getResourceServerInfo, splitScope, federated }) {
  const { client, params } = ctx.oidc;
  const target = requestedTarget ?? DOWNSTREAM_RESOURCE;
  if (!EXCHANGE_AUDIENCES.includes(target)) throw new errors.InvalidTarget(`${target} is not a target this client may exchange for`);
  const rs = new provider.ResourceServer(target, await getResourceServerInfo(ctx, target, client));
  const requested = splitScope(params.scope);
  const scope = (requested.length ? requested : [...rs.scopes]).filter((s) => rs.scopes.has(s));
  if (federated) { subject.grant.addResourceScope(target, scope.join(' ')); await subject.grant.save(); }
  const at = new provider.AccessToken({ accountId: subject.accountId, client, grantId: subject.grantId, gty, extra });
  at.resourceServer = rs;
  at.scope = scope.join(' ') || undefined;
  await bindDpop(provider, ctx, at);
  ctx.oidc.entity('AccessToken', at);
  const value = await at.save();
  ctx.body = {
    access_token: value, issued_token_type: ACCESS_TOKEN_TYPE, token_type: at.tokenType,
    expires_in: at.expiration, scope: at.scope,
  };
}

// RFC 7523 s2.1: a JWT of a trusted issuer (here: one this IdP signed) as the authorization grant itself.
export function registerJwtBearer(provider, getResourceServerInfo, splitScope) {
  provider.registerGrantType(JWT_BEARER, async (ctx) => {
    const { params } = ctx.oidc;
    if (!params.assertion) throw new errors.InvalidRequest('missing required parameter (assertion)');
    const subject = await federatedSubject(provider, ctx.oidc.client, params.assertion);
    await issueFor(provider, ctx, subject, params.resource, JWT_BEARER, {}, { getResourceServerInfo, splitScope, federated: true });
  }, ['assertion', 'scope', 'resource'], ['resource']);
}

// IDP_DPOP_NONCE=loop: a server that never accepts a nonce (koa middleware, before the provider's routes)
export function dpopNonceLoop(tokenPath, count) {
  return async (ctx, next) => {
    if (DPOP_NONCE === 'loop' && ctx.method === 'POST' && ctx.path.toLowerCase().endsWith(tokenPath.toLowerCase()) && ctx.get('DPoP')) {
      count('dpop_nonce_loop');
      ctx.status = 400;
      ctx.set('DPoP-Nonce', crypto.randomBytes(16).toString('base64url'));
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { error: 'use_dpop_nonce', error_description: 'Authorization server requires nonce in DPoP proof' };
      return undefined;
    }
    return next();
  };
}
