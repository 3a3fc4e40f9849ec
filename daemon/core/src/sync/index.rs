//! The core's in-memory index of the items this member holds, grouped by visibility class.
//!
//! A visibility class is one (TLP, origin, audience): every item of a class is in or out of the
//! reconciliation set of a pair of members together, so policy is asked once per class rather than
//! once per item when a reconciliation set is built.

use std::collections::HashMap;

use negentropy::{Id, NegentropyStorageVector};

use super::ItemMeta;
use crate::envelope::ItemId;
use crate::model::Tlp;
use crate::policy::{self, ItemScope};

/// One indexed item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) class: usize,
    pub(crate) bytes: u32,
}

#[derive(Debug)]
pub(crate) struct Class {
    pub(crate) origin: String,
    pub(crate) tlp: Tlp,
    pub(crate) audience: Vec<String>,
    items: Vec<(u64, ItemId)>,
}

impl Class {
    pub(crate) fn scope(&self) -> ItemScope<'_> {
        ItemScope::new(&self.origin, self.tlp, &self.audience)
    }
}

/// Items held, by id and by class. Items leave only when the store dropped them (`remove`: a
/// roster revocation or removal voided them); a wiped store is a new core.
#[derive(Debug, Default)]
pub(crate) struct ItemIndex {
    items: HashMap<ItemId, Entry>,
    classes: Vec<Class>,
    by_key: HashMap<(Tlp, String, Vec<String>), usize>,
    /// Sum of the items' envelope bytes.
    total_bytes: u64,
}

impl ItemIndex {
    /// Adds an item; `false` if it was already indexed.
    pub(crate) fn insert(&mut self, meta: &ItemMeta) -> bool {
        if self.items.contains_key(&meta.id) {
            return false;
        }
        let key = (meta.tlp, meta.origin.clone(), meta.audience.clone());
        let class = match self.by_key.get(&key) {
            Some(c) => *c,
            None => {
                let c = self.classes.len();
                self.classes.push(Class {
                    origin: meta.origin.clone(),
                    tlp: meta.tlp,
                    audience: meta.audience.clone(),
                    items: Vec::new(),
                });
                self.by_key.insert(key, c);
                c
            }
        };
        self.classes[class].items.push((meta.timestamp, meta.id));
        self.total_bytes = self.total_bytes.saturating_add(u64::from(meta.bytes));
        self.items.insert(
            meta.id,
            Entry {
                class,
                bytes: meta.bytes,
            },
        );
        true
    }

    /// Removes items (absent ones are skipped); returns how many were indexed.
    pub(crate) fn remove(&mut self, ids: &[ItemId]) -> usize {
        let mut by_class: HashMap<usize, std::collections::HashSet<ItemId>> = HashMap::new();
        for id in ids {
            if let Some(e) = self.items.remove(id) {
                self.total_bytes = self.total_bytes.saturating_sub(u64::from(e.bytes));
                by_class.entry(e.class).or_default().insert(*id);
            }
        }
        let mut n = 0;
        for (class, gone) in by_class {
            if let Some(c) = self.classes.get_mut(class) {
                c.items.retain(|(_, id)| !gone.contains(id));
            }
            n += gone.len();
        }
        n
    }

    /// Average envelope bytes of the items held (`None` while empty).
    pub(crate) fn average_bytes(&self) -> Option<u64> {
        (!self.items.is_empty()).then(|| self.total_bytes / self.items.len() as u64)
    }

    pub(crate) fn contains(&self, id: &ItemId) -> bool {
        self.items.contains_key(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn get(&self, id: &ItemId) -> Option<(Entry, &Class)> {
        let e = self.items.get(id)?;
        let c = self.classes.get(e.class)?;
        Some((*e, c))
    }

    /// The reconciliation set of `me` with `peer` (items `policy::in_reconcile_scope`), sealed as
    /// negentropy storage. Built only from classes in scope: nothing else can leak into it.
    pub(crate) fn storage_for(
        &self,
        me: &str,
        peer: &str,
    ) -> Result<NegentropyStorageVector, negentropy::Error> {
        let in_scope: Vec<&Class> = self
            .classes
            .iter()
            .filter(|c| policy::in_reconcile_scope(&c.scope(), me, peer))
            .collect();
        let n = in_scope.iter().map(|c| c.items.len()).sum();
        let mut storage = NegentropyStorageVector::with_capacity(n);
        for c in in_scope {
            for (ts, id) in &c.items {
                storage.insert(*ts, Id::from_byte_array(id.0))?;
            }
        }
        storage.seal()?;
        Ok(storage)
    }

    /// Number of items in the reconciliation set of `me` with `peer`.
    pub(crate) fn scope_len(&self, me: &str, peer: &str) -> usize {
        self.classes
            .iter()
            .filter(|c| policy::in_reconcile_scope(&c.scope(), me, peer))
            .map(|c| c.items.len())
            .sum()
    }
}
