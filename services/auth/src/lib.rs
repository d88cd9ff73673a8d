//! The auth service: users, login, JWT.
