//! The definitions each event type reaches, cached per API process, so accepting an event
//! costs one statement instead of a lookup of its definitions and then that statement.
//!
//! An entry holds the definitions' change counter it was read at (`definition_generation`,
//! bumped by a trigger whenever a definition is created, versioned, enabled, disabled or
//! deleted, from any process). Every write of an event's outcome commits only while that
//! counter is unchanged; a stale write writes nothing, and ingress reads the definitions again
//! and decides once more. So the cache never lets an event see a definition as it no longer
//! is, and needs no invalidation message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use taskfactory_activities::store::{Listening, Store, StoreError};

/// Event types kept at most; past it the cache starts over (types are few in practice).
const MAX_TYPES: usize = 1024;

/// Per event type, the definitions it reaches as last read.
#[derive(Clone, Default)]
pub struct ListeningCache(Arc<Mutex<HashMap<String, Arc<Listening>>>>);

impl ListeningCache {
    /// The cached definitions of `event_type`, read on the first use.
    pub async fn get(&self, store: &Store, event_type: &str) -> Result<Arc<Listening>, StoreError> {
        let cached = self.lock().get(event_type).cloned();
        match cached {
            Some(listening) => Ok(listening),
            None => self.reload(store, event_type).await,
        }
    }

    /// Reads the definitions of `event_type` again (a write found the cached ones stale).
    pub async fn reload(&self, store: &Store, event_type: &str) -> Result<Arc<Listening>, StoreError> {
        let fresh = Arc::new(store.event_definitions(event_type).await?);
        let mut cache = self.lock();
        // A slower concurrent read never replaces a newer one.
        match cache.get(event_type) {
            Some(kept) if kept.generation > fresh.generation => return Ok(kept.clone()),
            _ => {}
        }
        if cache.len() >= MAX_TYPES {
            cache.clear();
        }
        cache.insert(event_type.to_owned(), fresh.clone());
        Ok(fresh)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Listening>>> {
        // The map stays whole even if a holder panicked: every insert is one call.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
