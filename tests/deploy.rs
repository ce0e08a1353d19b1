//! Integration tests (deploy).
