// The API reference page (/docs/): Swagger UI over the server's /openapi.json, every file from
// this origin (bundled from the swagger-ui-dist npm package at build time), so it works without
// internet access and under a `default-src 'self'` content security policy. "Try it out" sends
// the requests to this server; the token from a login goes in "Authorize".

import 'swagger-ui-dist/swagger-ui.css';
import { SwaggerUIBundle } from 'swagger-ui-dist';

SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#api-reference',
  deepLinking: true,
  // No "validate this document" badge: it would send the document to swagger.io.
  validatorUrl: null,
});
