//! Pieces of the services' OpenAPI documents that are the same in each.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

/// Adds the `bearer` security scheme (an `Authorization: Bearer <JWT>` header) that the
/// endpoints taking a `CurrentUser` name: `#[openapi(modifiers(&BearerAuth))]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
