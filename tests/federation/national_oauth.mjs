// The national FHIR server's authorization server in the national
// connector's OAuth tests (national_oauth.rs): panva's oidc-provider (npm
// `oidc-provider`, OpenID Certified), configured here, not imitated. It
// grants the client credentials grant (RFC 6749 §4.4) to clients that
// authenticate with a JWT signed by their private key (RFC 7523,
// `private_key_jwt`, ES384 or RS384 as SMART Backend Services requires),
// and issues JWT access tokens (RFC 9068) for one resource server, the
// national FHIR server (resource indicators, RFC 8707), which verifies them
// against this server's JWK Set (`/jwks`). A `client_secret_basic` client
// seeds the FHIR server.
//
// Usage: node national_oauth.mjs <oidc-provider package dir> <config.json>
// config.json: { issuer, port, resource, scope, ttl,
//   clients: [{ client_id, public_key (PEM file), kid, alg }],
//   seeder: { client_id, secret } }
// Prints "listening" once it accepts connections.

import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [packageDir, configPath] = process.argv.slice(2);
const { default: Provider, errors } = await import(
  pathToFileURL(join(packageDir, 'lib', 'index.js')).href
);
const config = JSON.parse(readFileSync(configPath, 'utf8'));

// The access tokens' signing key, fresh for each run.
const signing = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ format: 'jwk' });

const systemClients = config.clients.map((client) => ({
  client_id: client.client_id,
  token_endpoint_auth_method: 'private_key_jwt',
  token_endpoint_auth_signing_alg: client.alg,
  jwks: {
    keys: [{
      ...createPublicKey(readFileSync(client.public_key)).export({ format: 'jwk' }),
      kid: client.kid,
      alg: client.alg,
      use: 'sig',
    }],
  },
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
}));

const provider = new Provider(config.issuer, {
  jwks: { keys: [{ ...signing, kid: 'national-as-1', alg: 'ES256', use: 'sig' }] },
  clients: [
    ...systemClients,
    {
      client_id: config.seeder.client_id,
      client_secret: config.seeder.secret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    },
  ],
  // The only signing key is the tokens' P-256 one.
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  enabledJWA: { clientAuthSigningAlgValues: ['ES384', 'RS384'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // SMART Backend Services clients send no `resource`: every token is
      // for the national FHIR server.
      defaultResource: () => config.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== config.resource) throw new errors.InvalidTarget();
        return {
          scope: config.scope,
          audience: config.resource,
          accessTokenTTL: config.ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});

provider.listen(config.port, '127.0.0.1', () => console.log('listening'));
