// The one call of swagger-ui-dist this client makes (the package ships no types).
declare module 'swagger-ui-dist' {
  export function SwaggerUIBundle(options: {
    url: string;
    dom_id: string;
    deepLinking?: boolean;
    validatorUrl?: string | null;
  }): unknown;
}
