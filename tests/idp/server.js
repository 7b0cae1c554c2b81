// server.js - a loopback OAuth 2.0 / OpenID Connect authorization server for tests,
// built on oidc-provider (panva, OpenID Certified) and mounted in express under the URL layout
// of a well-known server: Keycloak (default), Duende IdentityServer or SimpleIdServer.
//
// FOR TESTS ONLY: plain-http issuer, in-memory storage, fixed test users/passwords,
// and an unauthenticated /_admin API (device approval, auto-login, reset, clock skew, stats).
//
// Start:  node server.js            (prints one line "IDP_READY {json}" when serving)
// Env (all optional):
//   IDP_BIND=127.0.0.1  IDP_PORT=0 (0 = ephemeral)  IDP_PUBLIC_HOST=<BIND>
//   IDP_SHAPE=keycloak|identityserver|simpleidserver   URL layout (default keycloak):
//     keycloak        issuer <origin><IDP_PATH_PREFIX>/realms/<IDP_REALM>, endpoints under
//                     /protocol/openid-connect/{auth,token,userinfo,certs,token/introspect,revoke,logout,auth/device},
//                     device page /device (relative to the issuer)
//     identityserver  issuer <origin><IDP_PATH_PREFIX> (no realm), /connect/{authorize,token,userinfo,revocation,
//                     introspect,deviceauthorization,endsession}, jwks /.well-known/openid-configuration/jwks,
//                     device page /device
//     simpleidserver  issuer <origin><IDP_PATH_PREFIX>/<IDP_REALM> (realm default "master"), /authorization,
//                     /token, /userinfo, /token/revoke, /token_info (introspection), /device_authorization,
//                     /end_session, /jwks, device page /Device
//   IDP_REALM=demo (keycloak; '' = no /realms/<realm> part) | master (simpleidserver; '' = none) | ignored (identityserver)
//   IDP_PATH_PREFIX='' extra mount prefix before the shape's path, e.g. /auth -> <origin>/auth/realms/demo
//     (Keycloak's legacy layout). The admin API stays at <origin>/_admin (never prefixed).
//   IDP_DISCOVERY=on|off   off: /.well-known/openid-configuration answers 404; the RFC 8414 document
//     (<origin>/.well-known/oauth-authorization-server<issuer path>) is still served
//   IDP_DISCOVERY_OMIT=key1,key2 metadata keys removed from both discovery documents,
//     e.g. device_authorization_endpoint,revocation_endpoint (the endpoints themselves keep working)
//   IDP_READY_FILE=path (JSON written when ready)   IDP_LOG=1 (request log)   IDP_DEBUG=1 (error details)
//   IDP_AUTO_LOGIN=alice (skip the login form)      IDP_CONSENT_PAGE=1 (show consent form instead of auto-consent)
//   IDP_DEVICE_INTERVAL=5  IDP_SLOW_DOWN_STEP=5  IDP_ENFORCE_INTERVAL=1
//   IDP_RT_ROTATION=always|never|default   IDP_RT_ALWAYS=1 (issue RTs without offline_access, Keycloak-like)
//   IDP_PKCE=public|all   IDP_DEFAULT_RESOURCE=urn:demo:api (every token becomes a JWT for that API)
//   IDP_API_RESOURCE=urn:demo:api (the resource indicator that yields RFC 9068 JWT access tokens)
//   IDP_USE_GRANTED_RESOURCE=1  IDP_DCR=0 (dynamic client registration)  IDP_EXPIRED_RETENTION=3600
//   IDP_DEVICE_AUTO_APPROVE=alice  every device code approves itself as that user after
//     IDP_DEVICE_AUTO_APPROVE_DELAY seconds (default 2), as if the user had confirmed it on another device
//     (unattended demos and notebook runs; '' = off). A code already approved, denied or expired is left alone.
//   IDP_TTL_<Model>=seconds, e.g. IDP_TTL_AccessToken=300 (AccessToken, ClientCredentials, IdToken,
//     RefreshToken, AuthorizationCode, DeviceCode, Interaction, Session, Grant)
//   IDP_CLOCK_TOLERANCE=0  IDP_CLOCK_SKEW=0 (seconds added to the server clock)
//   IDP_JWKS_FILE=path (load, or generate+save, the signing keys)   IDP_USERS_FILE / IDP_CLIENTS_FILE (JSON)
//
// The IDP_READY JSON: issuer, port, pid, shape, realm, path_prefix, discovery (null when IDP_DISCOVERY=off),
// oauth_discovery (RFC 8414 URL), admin (admin API base URL), device_page, omitted (metadata keys removed),
// endpoints ({metadata key: URL} for every endpoint, including omitted ones), startup_ms.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

import express from 'express';
import Provider, { errors } from 'oidc-provider';

// ---- issue 14 (JWT client auth, DPoP, token exchange): see protocols.js
import * as protocols from './protocols.js';

// ---------------------------------------------------------------- settings
const env = process.env;
const int = (name, dflt) => (env[name] === undefined || env[name] === '' ? dflt : Number.parseInt(env[name], 10));
const bool = (name, dflt) => (env[name] === undefined || env[name] === '' ? dflt : /^(1|true|yes|on)$/i.test(env[name]));

const BIND = env.IDP_BIND || '127.0.0.1';
const PORT = int('IDP_PORT', 0);
const PUBLIC_HOST = env.IDP_PUBLIC_HOST || BIND;
const SHAPE = (env.IDP_SHAPE || 'keycloak').toLowerCase();
const OIDC = '/protocol/openid-connect';
// routes of each URL shape, relative to the issuer (= the provider's mount point)
const SHAPE_ROUTES = {
  keycloak: {
    authorization: `${OIDC}/auth`,
    token: `${OIDC}/token`,
    userinfo: `${OIDC}/userinfo`,
    jwks: `${OIDC}/certs`,
    introspection: `${OIDC}/token/introspect`,
    revocation: `${OIDC}/revoke`,
    end_session: `${OIDC}/logout`,
    device_authorization: `${OIDC}/auth/device`,
    code_verification: '/device',
    pushed_authorization_request: `${OIDC}/ext/par/request`,
    registration: '/clients-registrations/openid-connect',
    backchannel_authentication: `${OIDC}/ext/ciba/auth`,
    challenge: `${OIDC}/challenge`,
    credential: `${OIDC}/credential`,
  },
  identityserver: { // Duende IdentityServer / IdentityServer4
    authorization: '/connect/authorize',
    token: '/connect/token',
    userinfo: '/connect/userinfo',
    jwks: '/.well-known/openid-configuration/jwks',
    introspection: '/connect/introspect',
    revocation: '/connect/revocation',
    end_session: '/connect/endsession',
    device_authorization: '/connect/deviceauthorization',
    code_verification: '/device',
    pushed_authorization_request: '/connect/par',
    registration: '/connect/dcr',
    backchannel_authentication: '/connect/ciba',
    challenge: '/connect/challenge',
    credential: '/connect/credential',
  },
  simpleidserver: {
    authorization: '/authorization',
    token: '/token',
    userinfo: '/userinfo',
    jwks: '/jwks',
    introspection: '/token_info',
    revocation: '/token/revoke',
    end_session: '/end_session',
    device_authorization: '/device_authorization',
    code_verification: '/Device',
    pushed_authorization_request: '/par',
    registration: '/register',
    backchannel_authentication: '/bc-authorize',
    challenge: '/challenge',
    credential: '/credential',
  },
};
if (!SHAPE_ROUTES[SHAPE]) {
  console.error(`IDP_FAILED unknown IDP_SHAPE=${SHAPE} (keycloak, identityserver or simpleidserver)`);
  process.exit(2);
}
const ROUTES = SHAPE_ROUTES[SHAPE];
const REALM = SHAPE === 'identityserver' ? '' : (env.IDP_REALM ?? (SHAPE === 'simpleidserver' ? 'master' : 'demo'));
const PATH_PREFIX = (() => { // '' or '/a/b' (leading slash added, trailing slashes removed)
  const p = (env.IDP_PATH_PREFIX ?? '').trim().replace(/\/+$/, '');
  return p && !p.startsWith('/') ? `/${p}` : p;
})();
const SHAPE_MOUNT = { keycloak: REALM ? `/realms/${REALM}` : '', identityserver: '', simpleidserver: REALM ? `/${REALM}` : '' }[SHAPE];
const PREFIX = `${PATH_PREFIX}${SHAPE_MOUNT}`; // the provider's mount point: issuer = origin + PREFIX
const DISCOVERY = bool('IDP_DISCOVERY', true);
const DISCOVERY_OMIT = (env.IDP_DISCOVERY_OMIT ?? '').split(',').map((k) => k.trim()).filter(Boolean);
// metadata key -> route name, for the ready file's `endpoints`
const ENDPOINT_KEYS = {
  authorization_endpoint: 'authorization', token_endpoint: 'token', userinfo_endpoint: 'userinfo', jwks_uri: 'jwks',
  introspection_endpoint: 'introspection', revocation_endpoint: 'revocation', end_session_endpoint: 'end_session',
  device_authorization_endpoint: 'device_authorization',
};
const API_RESOURCE = env.IDP_API_RESOURCE || 'urn:demo:api';
const API_SCOPES = 'api:read api:write';
const DEFAULT_RESOURCE = env.IDP_DEFAULT_RESOURCE || undefined;
const DEVICE_INTERVAL = int('IDP_DEVICE_INTERVAL', 5);
const SLOW_DOWN_STEP = int('IDP_SLOW_DOWN_STEP', 5);
const ENFORCE_INTERVAL = bool('IDP_ENFORCE_INTERVAL', true);
const RT_ROTATION = env.IDP_RT_ROTATION || 'always';
const RT_ALWAYS = bool('IDP_RT_ALWAYS', true);
const PKCE = env.IDP_PKCE || 'public';
const CONSENT_PAGE = bool('IDP_CONSENT_PAGE', false);
const LOG = bool('IDP_LOG', false);
const DEBUG = bool('IDP_DEBUG', false);
const EXPIRED_RETENTION = int('IDP_EXPIRED_RETENTION', 3600);
let autoLogin = env.IDP_AUTO_LOGIN || '';
const DEVICE_AUTO_APPROVE = env.IDP_DEVICE_AUTO_APPROVE || '';
const DEVICE_AUTO_APPROVE_DELAY = Number(env.IDP_DEVICE_AUTO_APPROVE_DELAY || 2);

// Clock skew / time travel: everything in oidc-provider reads time through Date.now().
let clockSkew = int('IDP_CLOCK_SKEW', 0);
const realNow = Date.now.bind(Date);
Date.now = () => realNow() + clockSkew * 1000;
const epoch = () => Math.floor(Date.now() / 1000);

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
// request counters for tests: `token:<grant_type>:<status>` and `<route>:<status>` (GET /_admin/stats)
let STATS = {};
const PASSWORD_GRANT = 'password';
const STATIC_SCOPES = ['openid', 'offline_access', 'profile', 'email', 'groups'];

// ---------------------------------------------------------------- users
const DEFAULT_USERS = [
  {
    username: 'alice', password: 'alice-password', sub: '6c1e1d7a-0b8f-4a63-9a55-1f0a3f7f0a11',
    claims: { name: 'Alice Liddell', given_name: 'Alice', family_name: 'Liddell', email: 'alice@example.test', email_verified: true, groups: ['analysts', 'admins'] },
  },
  {
    username: 'bob', password: 'bob-password', sub: '0b4c7f0e-5d7e-4c0b-8d2e-2f6b8c9d0b22',
    claims: { name: 'Bob Builder', given_name: 'Bob', family_name: 'Builder', email: 'bob@example.test', email_verified: false, groups: ['analysts'] },
  },
];
const USERS = env.IDP_USERS_FILE ? JSON.parse(fs.readFileSync(env.IDP_USERS_FILE, 'utf8')) : DEFAULT_USERS;
const userBySub = new Map(USERS.map((u) => [u.sub, u]));
const userByName = new Map(USERS.map((u) => [u.username, u]));
if (DEVICE_AUTO_APPROVE && !userByName.has(DEVICE_AUTO_APPROVE)) {
  console.error(`IDP_FAILED IDP_DEVICE_AUTO_APPROVE names an unknown user: ${DEVICE_AUTO_APPROVE}`);
  process.exit(2);
}
function authenticate(username, password) {
  const u = userByName.get(String(username ?? ''));
  if (!u) return undefined;
  const a = Buffer.from(String(password ?? '')); const b = Buffer.from(u.password);
  return a.length === b.length && crypto.timingSafeEqual(a, b) ? u : undefined;
}
function account(u) {
  return {
    accountId: u.sub,
    async claims() { return { sub: u.sub, preferred_username: u.username, ...u.claims }; },
  };
}

// ---------------------------------------------------------------- clients
const LOOPBACK_CB = ['http://127.0.0.1/callback', 'http://localhost/callback', 'http://[::1]/callback'];
const DEFAULT_CLIENTS = [
  { // confidential client, every grant; secret via HTTP Basic (or client_secret_post - both accepted)
    client_id: 'confidential-client', client_secret: 'confidential-secret',
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials', DEVICE_GRANT, PASSWORD_GRANT],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:8765/callback', 'http://localhost:8765/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1:8765/'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  { // public native client (a notebook helper): no secret, PKCE mandatory, loopback redirect on ANY port (RFC 8252)
    client_id: 'public-client', application_type: 'native', token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT, PASSWORD_GRANT],
    response_types: ['code'], redirect_uris: LOOPBACK_CB,
  },
  { // machine-to-machine only
    client_id: 'service-client', client_secret: 'service-secret',
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
  },
  { // RFC 6749 s2.3.1: id and secret must be form-encoded before Base64 in HTTP Basic. oidc-provider
    // form-decodes both halves ('+' = space, %XX) and refuses non-VSCHAR (outside 0x20-0x7E) ids/secrets,
    // so the secret is printable ASCII only (an 'é' would make the client invalid at startup).
    client_id: 'odd client:1', client_secret: 's3cr:t +%/&=?~',
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials', DEVICE_GRANT, PASSWORD_GRANT],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:8765/callback', 'http://localhost:8765/callback'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  { // same as public-client but with tiny TTLs, to test expiry without waiting
    client_id: 'short-lived-client', application_type: 'native', token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT, PASSWORD_GRANT],
    response_types: ['code'], redirect_uris: LOOPBACK_CB,
  },
];
DEFAULT_CLIENTS.push(...protocols.protocolClients(DEVICE_GRANT, PASSWORD_GRANT)); // issue 14
const CLIENTS = env.IDP_CLIENTS_FILE ? JSON.parse(fs.readFileSync(env.IDP_CLIENTS_FILE, 'utf8')) : DEFAULT_CLIENTS;
const CLIENT_TTLS = {
  'short-lived-client': { AccessToken: 3, IdToken: 3, RefreshToken: 6, DeviceCode: 4, AuthorizationCode: 3 },
};

// ---------------------------------------------------------------- TTLs (seconds)
const TTL_DEFAULTS = {
  AccessToken: 300, ClientCredentials: 300, IdToken: 300, RefreshToken: 1800, AuthorizationCode: 60,
  DeviceCode: 600, Interaction: 600, Session: 36000, Grant: 36000, BackchannelAuthenticationRequest: 600,
};
const ttl = Object.fromEntries(Object.entries(TTL_DEFAULTS).map(([name, dflt]) => {
  const global = int(`IDP_TTL_${name}`, dflt);
  return [name, (ctx, token, client) => CLIENT_TTLS[client?.clientId]?.[name] ?? global];
}));

// ---------------------------------------------------------------- storage: unbounded in-memory adapter
// (the built-in one is an LRU of ~1000 entries/generation and drops records right after expiry,
//  which turns "expired" errors into "not found" ones). Expired records are kept EXPIRED_RETENTION s.
const store = new Map(); // "Model:id" -> { payload, expiresAt }
const grantIndex = new Map(); // grantId -> Set("Model:id")
const userCodeIndex = new Map(); // userCode -> id
const uidIndex = new Map(); // session uid -> id
class TestAdapter {
  constructor(name) { this.name = name; }

  key(id) { return `${this.name}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
    if (payload.grantId) {
      if (!grantIndex.has(payload.grantId)) grantIndex.set(payload.grantId, new Set());
      grantIndex.get(payload.grantId).add(key);
    }
    if (payload.userCode) userCodeIndex.set(payload.userCode, id);
    if (this.name === 'Session' && payload.uid) uidIndex.set(payload.uid, id);
  }

  async find(id) { return store.get(this.key(id))?.payload; }

  async findByUserCode(userCode) { const id = userCodeIndex.get(userCode); return id && this.find(id); }

  async findByUid(uid) { const id = uidIndex.get(uid); return id && this.find(id); }

  async consume(id) { const e = store.get(this.key(id)); if (e) e.payload.consumed = epoch(); }

  async destroy(id) { store.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    for (const key of grantIndex.get(grantId) ?? []) store.delete(key);
    grantIndex.delete(grantId);
  }
}
function resetStorage() { store.clear(); grantIndex.clear(); userCodeIndex.clear(); uidIndex.clear(); }
setInterval(() => {
  const cutoff = Date.now() - EXPIRED_RETENTION * 1000;
  for (const [key, { expiresAt }] of store) if (expiresAt !== undefined && expiresAt < cutoff) store.delete(key);
}, 60_000).unref();

// ---------------------------------------------------------------- keys
function generateJwks() {
  const { privateKey: rsa } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { privateKey: ec } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = (k, alg) => ({ ...k.export({ format: 'jwk' }), use: 'sig', alg, kid: `${alg.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}` });
  return { keys: [jwk(rsa, 'RS256'), jwk(ec, 'ES256')] };
}
function loadJwks() {
  const file = env.IDP_JWKS_FILE;
  if (file && fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const jwks = generateJwks();
  if (file) fs.writeFileSync(file, JSON.stringify(jwks), { mode: 0o600 });
  return jwks;
}

// ---------------------------------------------------------------- resource server (JWT access tokens)
async function getResourceServerInfo(ctx, resourceIndicator /* , client */) {
  if (resourceIndicator === API_RESOURCE) {
    return { scope: API_SCOPES, audience: API_RESOURCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
  }
  const downstream = protocols.resourceServerInfo(resourceIndicator); // issue 14: token exchange target
  if (downstream) return downstream;
  throw new errors.InvalidTarget();
}

function splitScope(s) { return [...new Set(String(s ?? '').split(' ').filter(Boolean))]; }

// Builds and saves a Grant the way a consent screen would (used by the password grant and
// by the /_admin device approval shortcut).
async function buildGrant(provider, { ctx, client, accountId, scope, resource }) {
  const requested = splitScope(scope);
  if (client.scope) {
    const allowed = new Set(client.scope.split(' '));
    for (const s of requested) {
      if (STATIC_SCOPES.includes(s) && !allowed.has(s)) throw new errors.InvalidScope('requested scope is not allowed', s);
    }
  }
  const oidcScopes = requested.filter((s) => STATIC_SCOPES.includes(s));
  const grant = new provider.Grant({ accountId, clientId: client.clientId });
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  let rs; let rsScopes = [];
  if (resource) {
    rs = new provider.ResourceServer(resource, await getResourceServerInfo(ctx, resource, client));
    rsScopes = requested.filter((s) => rs.scopes.has(s));
    grant.addResourceScope(resource, rsScopes.join(' '));
  }
  const grantId = await grant.save();
  return { grant, grantId, oidcScopes, rs, rsScopes };
}

// ---------------------------------------------------------------- provider factory
function createProvider(issuer) {
  const provider = new Provider(issuer, {
    adapter: TestAdapter,
    clients: CLIENTS,
    jwks: protocols.keepJwks(loadJwks()), // issue 14: the public half verifies federated subject tokens
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    findAccount: async (ctx, sub) => { const u = userBySub.get(sub); return u && account(u); },
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: STATIC_SCOPES,
    conformIdTokenClaims: false, // put scope-requested claims into the ID token too (Keycloak does)
    clockTolerance: int('IDP_CLOCK_TOLERANCE', 0),
    routes: ROUTES, // the IDP_SHAPE layout (relative to the mount prefix)
    interactions: { url: async (ctx, interaction) => `${PREFIX}/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false }, // replaced by the scriptable login page below
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true, charset: 'base-20', mask: '****-****' },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      dPoP: protocols.dpopFeature(), // issue 14: IDP_DPOP_NONCE
      registration: { enabled: bool('IDP_DCR', false) },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => oneOf ?? DEFAULT_RESOURCE,
        useGrantedResource: async () => bool('IDP_USE_GRANTED_RESOURCE', true),
        getResourceServerInfo,
      },
    },
    pkce: { required: (ctx, client) => PKCE === 'all' || client.clientAuthMethod === 'none' },
    ttl,
    issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
      && (RT_ALWAYS || code.scopes.has('offline_access')),
    ...(RT_ROTATION === 'default' ? {} : { rotateRefreshToken: RT_ROTATION === 'always' }),
    extraTokenClaims: async (ctx, token) => {
      const u = token.accountId && userBySub.get(token.accountId);
      return u ? { preferred_username: u.username } : undefined;
    },
  });

  // ---- Resource Owner Password Credentials grant (RFC 6749 s4.3) - not built in, registered here.
  provider.registerGrantType(PASSWORD_GRANT, async (ctx) => {
    const { client, params } = ctx.oidc;
    if (!params.username || !params.password) {
      throw new errors.InvalidRequest('missing required parameter(s) (username, password)');
    }
    const u = authenticate(params.username, params.password);
    if (!u) throw new errors.InvalidGrant('invalid resource owner credentials');
    let { resource } = params;
    if (Array.isArray(resource)) {
      if (resource.length > 1) throw new errors.InvalidTarget('only a single resource indicator value is supported for this grant type');
      [resource] = resource;
    }
    resource ??= DEFAULT_RESOURCE;
    const scope = params.scope ?? 'openid';
    const { grantId, oidcScopes, rs, rsScopes } = await buildGrant(provider, {
      ctx, client, accountId: u.sub, scope, resource,
    });
    const acct = account(u);
    ctx.oidc.entity('Account', acct);

    const at = new provider.AccessToken({ accountId: u.sub, client, grantId, gty: PASSWORD_GRANT });
    if (rs) {
      at.resourceServer = rs;
      at.scope = rsScopes.join(' ') || undefined;
    } else {
      at.scope = oidcScopes.join(' ') || undefined;
    }
    const passwordRt = { jkt: undefined }; // issue 14: DPoP binding (RFC 9449 s5)
    await protocols.bindDpop(provider, ctx, at, passwordRt);
    ctx.oidc.entity('AccessToken', at);
    const accessToken = await at.save();
    const allScopes = [...oidcScopes, ...rsScopes].join(' ');
    const authTime = epoch();

    const body = { access_token: accessToken, expires_in: at.expiration, token_type: at.tokenType, scope: at.scope };
    if (client.grantTypeAllowed('refresh_token') && (RT_ALWAYS || oidcScopes.includes('offline_access'))) {
      const rt = new provider.RefreshToken({
        accountId: u.sub, client, grantId, gty: PASSWORD_GRANT, scope: allScopes, resource, rotations: 0, authTime, amr: ['pwd'],
        ...(passwordRt.jkt ? { jkt: passwordRt.jkt } : {}),
      });
      ctx.oidc.entity('RefreshToken', rt);
      body.refresh_token = await rt.save();
    }
    if (oidcScopes.includes('openid')) {
      const idt = new provider.IdToken({ ...(await acct.claims()), auth_time: authTime, amr: ['pwd'] }, { ctx });
      idt.scope = oidcScopes.join(' ');
      body.id_token = await idt.issue({ use: 'idtoken' });
    }
    ctx.body = body;
  }, ['username', 'password', 'scope', 'resource'], ['resource']);

  // ---- issue 14: RFC 8693 token exchange; IDP_DPOP_NONCE=loop
  protocols.registerTokenExchange(provider, getResourceServerInfo, splitScope);
  protocols.registerJwtBearer(provider, getResourceServerInfo, splitScope);
  provider.use(protocols.dpopNonceLoop(ROUTES.token, (k) => { STATS[k] = (STATS[k] ?? 0) + 1; }));

  // ---- RFC 8628 polling discipline: advertise `interval`, answer slow_down when polled too fast.
  const polls = new Map(); // device_code -> { last, interval }
  provider.use(async (ctx, next) => {
    await next();
    const route = ctx.oidc?.route;
    if (route === 'token') {
      const g = ctx.oidc.params?.grant_type ?? '?';
      const k = `token:${g}:${ctx.status}`;
      STATS[k] = (STATS[k] ?? 0) + 1;
    } else if (route) {
      const k = `${route}:${ctx.status}`;
      STATS[k] = (STATS[k] ?? 0) + 1;
    }
    if (route === 'discovery' && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
      for (const key of DISCOVERY_OMIT) delete ctx.body[key];
    }
    if (route === 'device_authorization' && ctx.status === 200 && ctx.body?.device_code) {
      ctx.body.interval = DEVICE_INTERVAL;
      polls.set(ctx.body.device_code, { last: 0, interval: DEVICE_INTERVAL });
      if (DEVICE_AUTO_APPROVE) {
        const userCode = ctx.body.user_code;
        setTimeout(() => {
          autoApproveDevice(provider, userCode, DEVICE_AUTO_APPROVE)
            .catch((err) => console.error(`[idp] device auto-approve failed: ${err?.message ?? err}`));
        }, DEVICE_AUTO_APPROVE_DELAY * 1000).unref();
      }
    } else if (route === 'token' && ENFORCE_INTERVAL && ctx.status === 400
      && ctx.body?.error === 'authorization_pending') {
      const dc = ctx.oidc.params?.device_code;
      const st = polls.get(dc) ?? { last: 0, interval: DEVICE_INTERVAL };
      const now = realNow();
      if (st.last && now - st.last < st.interval * 1000 - 50) {
        st.interval += SLOW_DOWN_STEP;
        ctx.body = { error: 'slow_down', error_description: `polling too fast, the interval is now ${st.interval}s` };
        STATS.device_slow_down = (STATS.device_slow_down ?? 0) + 1; // the 400 counter alone can't tell slow_down from pending
      }
      st.last = now;
      polls.set(dc, st);
    }
  });

  if (DEBUG) {
    for (const ev of ['grant.error', 'introspection.error', 'revocation.error', 'userinfo.error', 'server_error', 'authorization.error', 'end_session.error', 'discovery.error']) {
      provider.on(ev, (ctx, err) => console.error(`[idp] ${ev}: ${err?.error ?? err?.message} - ${err?.error_detail ?? err?.error_description ?? ''}`));
    }
  }
  return provider;
}

// A pending device code approved by user `u`: the grant for its scope and resource, as the consent page makes.
async function approveAs(provider, code, u) {
  const client = await provider.Client.find(code.clientId);
  let resource = code.params.resource ?? DEFAULT_RESOURCE;
  if (Array.isArray(resource)) [resource] = resource;
  const { grantId, oidcScopes, rsScopes } = await buildGrant(provider, {
    ctx: undefined, client, accountId: u.sub, scope: code.params.scope, resource,
  });
  Object.assign(code, {
    accountId: u.sub, grantId, authTime: epoch(), amr: ['pwd'], expiresWithSession: false,
    scope: [...oidcScopes, ...rsScopes].join(' ') || undefined, ...(resource ? { resource } : {}),
  });
}

// IDP_DEVICE_AUTO_APPROVE: approve a pending device code as `username` (what POST /_admin/device/approve
// does); codes already approved, denied, expired or forgotten (reset) are left alone.
async function autoApproveDevice(provider, userCode, username) {
  const code = await provider.DeviceCode.findByUserCode(
    String(userCode ?? '').toUpperCase().replace(/\W/g, ''), { ignoreExpiration: true },
  );
  const u = userByName.get(username);
  if (!code || !u || code.isExpired || code.accountId || code.error) return false;
  await approveAs(provider, code, u);
  await code.save();
  STATS.device_auto_approved = (STATS.device_auto_approved ?? 0) + 1;
  return true;
}

// ---------------------------------------------------------------- HTML for the interaction pages
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`;
function loginPage(uid, params, error) {
  return page('Sign in', `<h1>Sign in to ${esc(REALM || 'idp')}</h1>
${error ? `<p id="input-error" class="error">${esc(error)}</p>` : ''}
<p>client: ${esc(params.client_id)} - scope: ${esc(params.scope)}</p>
<form id="kc-form-login" method="post" action="${PREFIX}/interaction/${esc(uid)}/login">
  <input name="username" value="${esc(params.login_hint ?? '')}" autofocus>
  <input name="password" type="password">
  <button type="submit" name="login" value="yes">Sign in</button>
</form>
<form id="abort" method="post" action="${PREFIX}/interaction/${esc(uid)}/abort"><button type="submit">Cancel</button></form>`);
}
function consentPage(uid, params, details) {
  return page('Consent', `<h1>Grant access to ${esc(params.client_id)}?</h1>
<pre>${esc(JSON.stringify(details, null, 1))}</pre>
<form id="consent" method="post" action="${PREFIX}/interaction/${esc(uid)}/confirm"><button type="submit">Yes</button></form>
<form id="abort" method="post" action="${PREFIX}/interaction/${esc(uid)}/abort"><button type="submit">No</button></form>`);
}

async function finishConsent(provider, req, res, details) {
  const { prompt: { details: d }, params, session: { accountId } } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

// ---------------------------------------------------------------- express app
function createApp(provider) {
  const app = express();
  app.disable('x-powered-by');
  const form = express.urlencoded({ extended: false }); // ONLY on our own routes, never in front of the provider
  if (LOG) app.use((req, res, next) => { res.on('finish', () => console.log(`[idp] ${req.method} ${req.originalUrl} -> ${res.statusCode}`)); next(); });

  const noCache = (req, res, next) => { res.set('cache-control', 'no-store'); next(); };
  const interactions = express.Router();
  interactions.get('/interaction/:uid', noCache, async (req, res, next) => {
    try {
      const details = await provider.interactionDetails(req, res);
      const { uid, prompt, params } = details;
      if (prompt.name === 'login') {
        const u = autoLogin && userByName.get(autoLogin);
        if (u) {
          return await provider.interactionFinished(req, res, { login: { accountId: u.sub, amr: ['pwd'] } }, { mergeWithLastSubmission: false });
        }
        return res.type('html').send(loginPage(uid, params));
      }
      if (prompt.name === 'consent') {
        if (CONSENT_PAGE) return res.type('html').send(consentPage(uid, params, prompt.details));
        return await finishConsent(provider, req, res, details);
      }
      return res.status(400).send(`unsupported prompt ${prompt.name}`);
    } catch (err) { return next(err); }
  });
  interactions.post('/interaction/:uid/login', noCache, form, async (req, res, next) => {
    try {
      const { uid, prompt, params } = await provider.interactionDetails(req, res);
      if (prompt.name !== 'login') return res.status(400).send('not a login prompt');
      const u = authenticate(req.body?.username, req.body?.password);
      if (!u) return res.status(200).type('html').send(loginPage(uid, params, 'Invalid username or password.'));
      return await provider.interactionFinished(req, res, { login: { accountId: u.sub, amr: ['pwd'] } }, { mergeWithLastSubmission: false });
    } catch (err) { return next(err); }
  });
  interactions.post('/interaction/:uid/confirm', noCache, form, async (req, res, next) => {
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name !== 'consent') return res.status(400).send('not a consent prompt');
      return await finishConsent(provider, req, res, details);
    } catch (err) { return next(err); }
  });
  interactions.all('/interaction/:uid/abort', noCache, async (req, res, next) => {
    try {
      return await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
    } catch (err) { return next(err); }
  });

  // ---- test-only admin API (loopback, unauthenticated)
  const admin = express.Router();
  admin.use(form, express.json(), (req, res, next) => { req.body ??= {}; next(); });
  admin.get('/health', (req, res) => res.json({ status: 'ok', issuer: provider.issuer }));
  admin.post('/auto-login', (req, res) => {
    const name = req.body.username ?? '';
    if (name && !userByName.has(name)) return res.status(404).json({ error: 'unknown user' });
    autoLogin = name;
    return res.json({ auto_login: autoLogin || null });
  });
  admin.post('/clock', (req, res) => { clockSkew = Number(req.body.skew ?? 0); res.json({ skew: clockSkew, now: epoch() }); });
  admin.post('/reset', (req, res) => { resetStorage(); STATS = {}; res.json({ reset: true }); });
  admin.get('/stats', (req, res) => res.json(STATS));
  admin.get('/client-keys', (req, res) => res.json(protocols.clientKeys())); // issue 14: jwt-client's private JWKs
  admin.post('/device/:action', async (req, res, next) => {
    try {
      if (!['approve', 'deny'].includes(req.params.action)) return res.status(404).json({ error: 'unknown action' });
      const userCode = String(req.body.user_code ?? '').toUpperCase().replace(/\W/g, '');
      const code = await provider.DeviceCode.findByUserCode(userCode, { ignoreExpiration: true });
      if (!code) return res.status(404).json({ error: 'unknown user_code' });
      if (code.isExpired) return res.status(410).json({ error: 'expired' });
      if (code.accountId || code.error) return res.status(409).json({ error: 'already used' });
      if (req.params.action === 'deny') {
        Object.assign(code, { error: 'access_denied', errorDescription: 'End-User denied the device' });
      } else {
        const u = userByName.get(req.body.username ?? 'alice');
        if (!u) return res.status(404).json({ error: 'unknown user' });
        await approveAs(provider, code, u);
      }
      await code.save();
      return res.json({ [req.params.action === 'deny' ? 'denied' : 'approved']: userCode });
    } catch (err) { return next(err); }
  });
  app.use('/_admin', admin);

  app.use(PREFIX || '/', interactions);
  if (!DISCOVERY) { // IDP_DISCOVERY=off: no OpenID discovery document, RFC 8414 only
    app.get(`${PREFIX}/.well-known/openid-configuration`, (req, res) => {
      res.status(404).json({ error: 'not_found', error_description: 'discovery is disabled (IDP_DISCOVERY=off)' });
    });
  }
  // RFC 8414 location for an issuer with a path component
  if (PREFIX) {
    const cb = provider.callback();
    app.get(`/.well-known/oauth-authorization-server${PREFIX}`, (req, res) => {
      req.originalUrl = `${PREFIX}/.well-known/oauth-authorization-server`;
      req.url = '/.well-known/oauth-authorization-server';
      cb(req, res);
    });
  }
  app.use(PREFIX || '/', provider.callback()); // <- the mount; oidc-provider derives URLs from req.originalUrl
  app.use((err, req, res, next) => { // interaction errors (expired / missing cookie ...)
    if (res.headersSent) return next(err);
    return res.status(err.statusCode ?? 500).json({ error: err.error ?? 'server_error', error_description: err.error_description ?? err.message });
  });
  return app;
}

// ---------------------------------------------------------------- boot
let handler = (req, res) => { res.statusCode = 503; res.end('starting'); };
const server = http.createServer((req, res) => handler(req, res));
server.listen(PORT, BIND, async () => {
  try {
    const { port } = server.address();
    const issuer = `http://${PUBLIC_HOST.includes(':') ? `[${PUBLIC_HOST}]` : PUBLIC_HOST}:${port}${PREFIX}`;
    const provider = createProvider(issuer);
    // static clients are validated lazily by oidc-provider (first request); fail fast instead
    for (const c of CLIENTS) await provider.Client.find(c.client_id);
    handler = createApp(provider);
    const origin = new URL(issuer).origin;
    const info = {
      issuer, port, pid: process.pid, shape: SHAPE, realm: REALM, path_prefix: PATH_PREFIX,
      discovery: DISCOVERY ? `${issuer}/.well-known/openid-configuration` : null,
      oauth_discovery: `${origin}/.well-known/oauth-authorization-server${PREFIX}`,
      admin: `${origin}/_admin`,
      device_page: `${issuer}${ROUTES.code_verification}`,
      omitted: DISCOVERY_OMIT,
      endpoints: Object.fromEntries(Object.entries(ENDPOINT_KEYS).map(([k, r]) => [k, `${issuer}${ROUTES[r]}`])),
      startup_ms: Math.round(performance.now()),
    };
    if (env.IDP_READY_FILE) fs.writeFileSync(env.IDP_READY_FILE, JSON.stringify(info));
    console.log(`IDP_READY ${JSON.stringify(info)}`);
  } catch (err) {
    console.error(`IDP_FAILED ${err.stack ?? err}${err.error_description ? ` (${err.error_description})` : ''}`);
    process.exit(1);
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // do not wait for clients' idle keep-alive sockets
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
