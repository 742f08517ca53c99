// An OpenID Connect provider for the tests: oidc-provider with its built-in login pages
// (devInteractions: any password; the login name picks one of IDP_USERS) and a groups claim.
// Configured from the environment: IDP_HOST (default 127.0.0.1), IDP_PORT, IDP_ISSUER, IDP_CLIENT_ID, IDP_CLIENT_SECRET,
// IDP_REDIRECT_URIS (comma-separated), IDP_POST_LOGOUT_URIS, IDP_JWKS (its signing keys, a private JWK set;
// default: made at start), and IDP_USERS: {"login": ["group", ...]} or {"login": {"name": ..., "groups": [...]}},
// where a null name or groups leaves that claim out of the user's tokens.
import Provider from 'oidc-provider';

const env = process.env;
const users = Object.fromEntries(Object.entries(JSON.parse(env.IDP_USERS)).map(
  ([login, user]) => [login, Array.isArray(user) ? { name: login, groups: user } : user]));

const provider = new Provider(env.IDP_ISSUER, {
  clients: [{
    client_id: env.IDP_CLIENT_ID,
    client_secret: env.IDP_CLIENT_SECRET,
    redirect_uris: env.IDP_REDIRECT_URIS.split(','),
    post_logout_redirect_uris: (env.IDP_POST_LOGOUT_URIS || '').split(',').filter(Boolean),
    response_types: ['code'],
    grant_types: ['authorization_code'],
  }],
  ...(env.IDP_JWKS ? { jwks: JSON.parse(env.IDP_JWKS) } : {}),
  claims: { openid: ['sub'], profile: ['preferred_username'], groups: ['groups'] },
  scopes: ['openid', 'profile', 'groups'],
  conformIdTokenClaims: false, // put the claims in the ID token too
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ['campushub-test-idp-cookie-key'] },
  async findAccount(ctx, id) {
    if (!(id in users)) return undefined;
    const { name, groups } = users[id];
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          ...(name === null ? {} : { preferred_username: name }),
          ...(groups === null ? {} : { groups }),
        };
      },
    };
  },
});
provider.proxy = true;
provider.listen(Number(env.IDP_PORT), env.IDP_HOST || '127.0.0.1', () => console.log(`idp: listening at ${env.IDP_ISSUER}`));
