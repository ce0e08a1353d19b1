//! Integration tests (tags_bulk).
