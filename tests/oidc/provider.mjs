// A real OpenID Connect provider (npm oidc-provider) for the sign-in tests, laid out like
// Keycloak or Authentik so the hub is configured exactly as in production.
//
//   node provider.mjs CONFIG.json
//
// CONFIG.json (written by the test; `accounts` is re-read at every sign-in, so a test changes a
// user's groups by rewriting the file):
//   {"port": 0, "layout": "keycloak" | "authentik", "realm": "jupyter", "slug": "jupyterhub",
//    "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": ["..."]}],
//    "accounts": {"alice": {"password": "...", "groups": ["cpsHPCAccess"], "email": "..."}}}
//
// Prints "READY <issuer>" on stdout once it listens on 127.0.0.1.
import fs from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const configPath = process.argv[2];
const readConfig = () => JSON.parse(fs.readFileSync(configPath, 'utf8'));
const config = readConfig();

// Where each IdP puts its endpoints. Keycloak: everything under the realm's issuer. Authentik:
// one issuer per application, endpoints shared by all applications under /application/o/.
function layoutFor(origin) {
  if (config.layout === 'authentik') {
    const slug = config.slug || 'jupyterhub';
    return {
      mount: '/application/o',
      issuer: `${origin}/application/o/${slug}/`,
      routes: {
        authorization: '/authorize/',
        token: '/token/',
        userinfo: '/userinfo/',
        jwks: `/${slug}/jwks/`,
        end_session: `/${slug}/end-session/`,
      },
    };
  }
  const realm = config.realm || 'jupyter';
  return {
    mount: `/realms/${realm}`,
    issuer: `${origin}/realms/${realm}`,
    routes: {
      authorization: '/protocol/openid-connect/auth',
      token: '/protocol/openid-connect/token',
      userinfo: '/protocol/openid-connect/userinfo',
      jwks: '/protocol/openid-connect/certs',
      end_session: '/protocol/openid-connect/logout',
    },
  };
}

const escapeHtml = (text) =>
  String(text).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );

function loginPage(uid, mount, error) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Test IdP sign-in</title></head>
<body><h1>Test identity provider</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${mount}/interaction/${escapeHtml(uid)}">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

const server = http.createServer();
server.listen(config.port || 0, '127.0.0.1', () => {
  const origin = `http://127.0.0.1:${server.address().port}`;
  const layout = layoutFor(origin);
  const claimNames = ['preferred_username', 'name', 'email', 'groups'];
  const provider = new Provider(layout.issuer, {
    clients: config.clients.map((client) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      ...client,
    })),
    routes: layout.routes,
    // Both IdPs put the groups into the profile scope's claims (Keycloak through a
    // "Group Membership" mapper, Authentik by default).
    claims: { openid: ['sub'], profile: claimNames.filter((c) => c !== 'email'), email: ['email'] },
    scopes: ['openid', 'profile', 'email'],
    features: { devInteractions: { enabled: false } },
    cookies: { keys: ['test-only-cookie-key-not-a-secret'] },
    interactions: { url: (ctx, interaction) => `${layout.mount}/interaction/${interaction.uid}` },
    // A first-party client: no consent screen (as with Keycloak's "Consent required: off").
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid profile email');
      grant.addOIDCClaims(claimNames);
      await grant.save();
      return grant;
    },
    async findAccount(ctx, id) {
      const account = readConfig().accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          // Read again: a test may have changed the groups since the session started.
          const now = readConfig().accounts[id] || {};
          return {
            sub: id,
            preferred_username: id,
            name: now.name || id,
            email: now.email || `${id}@example.org`,
            groups: now.groups || [],
          };
        },
      };
    },
  });

  const callback = provider.callback();
  server.on('request', async (req, res) => {
    try {
      if (!req.url.startsWith(`${layout.mount}/`)) {
        res.writeHead(404).end('not found');
        return;
      }
      const path = req.url.slice(layout.mount.length);
      if (path.startsWith('/interaction/')) {
        const uid = path.slice('/interaction/'.length).split('?')[0];
        const details = await provider.interactionDetails(req, res);
        if (req.method === 'POST') {
          const form = await readForm(req);
          const username = form.get('username') || '';
          const account = readConfig().accounts[username];
          if (!account || account.password !== form.get('password')) {
            res.writeHead(401, { 'Content-Type': 'text/html; charset=utf-8' });
            res.end(loginPage(uid, layout.mount, 'Invalid username or password.'));
            return;
          }
          await provider.interactionFinished(
            req,
            res,
            { login: { accountId: username } },
            { mergeWithLastSubmission: false },
          );
          return;
        }
        if (details.prompt.name !== 'login') {
          res.writeHead(501).end(`prompt ${details.prompt.name} is not implemented`);
          return;
        }
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(loginPage(uid, layout.mount, ''));
        return;
      }
      // As express does when the provider is mounted under a path.
      req.originalUrl = req.url;
      req.url = path || '/';
      callback(req, res);
    } catch (error) {
      console.error(error);
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    }
  });
  process.stdout.write(`READY ${layout.issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
