//! Token validation shared by the services.
