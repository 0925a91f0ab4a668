// A real, certified OpenID provider (oidc-provider) for UserHub's sign-in
// tests. It listens on a free port of 127.0.0.1 and prints one JSON line,
// {"issuer": "http://127.0.0.1:<port>"}, once it serves.
//
//   node provider.mjs <redirect base> [client id] [client secret]
//
// Its login and consent pages are the smallest real ones: the test posts
// them as a browser would post their forms.
//   GET  /interaction/:uid          JSON {"prompt": "login" | "consent"}
//   POST /interaction/:uid/login    form login=<account>; the account's
//                                   e-mail is <account>@example.com, not
//                                   verified if it starts with
//                                   "unverified", absent if it starts with
//                                   "noemail"; for "kelvin-<name>", every
//                                   "k" of <name> is a Kelvin sign (U+212A),
//                                   a lookalike that folds to "k"
//   POST /interaction/:uid/confirm  grants what the client asked for
//
// POST /__test/rogue?on=1 makes a second provider with the same issuer but
// other signing keys answer every request but the JWK Set: its ID tokens
// are signed by a key the published set does not hold. With &keys=1 it
// answers the JWK Set too: the provider has rotated its keys.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const [redirectBase, clientId = 'userhub', clientSecret = 'userhub-test-secret'] =
  process.argv.slice(2);
if (!redirectBase) {
  console.error('usage: node provider.mjs <redirect base> [client id] [client secret]');
  process.exit(2);
}

function signingKeys(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' }] };
}

function account(id) {
  return {
    accountId: id,
    async claims() {
      const claims = { sub: id, preferred_username: id, name: `Test ${id}` };
      if (id.startsWith('kelvin-')) {
        claims.email = `${id.slice('kelvin-'.length).replaceAll('k', '\u212A')}@example.com`;
        claims.email_verified = true;
      } else if (!id.startsWith('noemail')) {
        claims.email = `${id}@example.com`;
        claims.email_verified = !id.startsWith('unverified');
      }
      return claims;
    },
  };
}

function configuration(kid) {
  return {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [
          `${redirectBase}/api/auth/oauth/test/callback`,
          `${redirectBase}/api/auth/oauth/test/associate/callback`,
        ],
      },
    ],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (ctx, id) => account(id),
    jwks: signingKeys(kid),
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
  };
}

let honest;
let rogue;
let rogueOn = false;
let rogueKeys = false;

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

async function interaction(provider, req, res, path) {
  const [, , uid, action] = path.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'interaction of another browser' }));
    return;
  }
  if (req.method === 'GET' && action === undefined) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ uid, prompt: details.prompt.name }));
    return;
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const login = form.get('login');
    if (!login) {
      res.writeHead(400).end();
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, {
      mergeWithLastSubmission: false,
    });
    return;
  }
  if (req.method === 'POST' && action === 'confirm') {
    const { prompt, params, session } = details;
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
    return;
  }
  res.writeHead(404).end();
}

const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, 'http://localhost').pathname;
    if (path === '/__test/rogue' && req.method === 'POST') {
      const params = new URL(req.url, 'http://localhost').searchParams;
      rogueOn = params.get('on') === '1';
      rogueKeys = params.get('keys') === '1';
      res.writeHead(204).end();
      return;
    }
    const provider = rogueOn && (rogueKeys || path !== '/jwks') ? rogue : honest;
    if (path.startsWith('/interaction/')) {
      await interaction(provider, req, res, path);
      return;
    }
    provider.callback()(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  }
});

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  honest = new Provider(issuer, configuration('honest'));
  rogue = new Provider(issuer, configuration('rogue'));
  // The issuer is plain HTTP on loopback: tell the provider so.
  honest.proxy = true;
  rogue.proxy = true;
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
