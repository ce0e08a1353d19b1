//! What every handler needs, built once per process (Lambda container or local server).

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::crypto::CredentialKey;
use crate::queue::Queue;
use crate::storage::Storage;
use crate::web::auth::Authenticator;
use crate::Config;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub db: Pool,
    pub auth: Authenticator,
    pub credential_key: CredentialKey,
    pub storage: Storage,
    pub queue: Arc<dyn Queue>,
}
