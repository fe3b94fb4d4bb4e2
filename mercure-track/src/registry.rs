//! The program's events, found without a hand-kept list.
//!
//! `#[derive(MercureEvent)]` submits each event's [`EventDescriptor`] to a link-time
//! collection (`inventory`); the first lookup builds the indexes below once, so that a changed
//! column finds the events it triggers with one hash lookup instead of a scan of every event.

use std::any::TypeId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use crate::event::{EventDescriptor, TriggerSpec};
use crate::model::TriggerKey;

/// A registered event. Submitted by generated code.
/// A hasher for the program's own keys (type ids, table and column names): they come from the
/// code, never from input, so a fast multiply-rotate hash serves where the default SipHash
/// (built against crafted input) costs a few hundred instructions per lookup.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ProgramKeyHasher(u64);

impl ProgramKeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for ProgramKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by the program's own keys (see [`ProgramKeyHasher`]).
#[doc(hidden)]
pub type ProgramKeyMap<K, V> = HashMap<K, V, BuildHasherDefault<ProgramKeyHasher>>;

#[doc(hidden)]
pub struct Registration(pub &'static EventDescriptor);

inventory::collect!(Registration);

struct Index {
    all: Vec<&'static EventDescriptor>,
    by_trigger: ProgramKeyMap<TriggerKey, Vec<&'static EventDescriptor>>,
    by_type_id: ProgramKeyMap<TypeId, &'static EventDescriptor>,
    by_type_name: HashMap<&'static str, Vec<&'static EventDescriptor>>,
    batches_by_collected: ProgramKeyMap<TypeId, Vec<&'static EventDescriptor>>,
    triggers: ProgramKeyMap<TypeId, Vec<TriggerSpec>>,
    /// Type strings shared by several events, found once when the index is built.
    duplicates: Vec<RegistryError>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut all: Vec<&'static EventDescriptor> = inventory::iter::<Registration>
            .into_iter()
            .map(|r| r.0)
            .collect();
        // Link order is not specified: sort for stable schemas and iteration.
        all.sort_by_key(|d| (d.type_name, d.rust_name));
        let mut index = Index {
            all: all.clone(),
            by_trigger: ProgramKeyMap::default(),
            by_type_id: ProgramKeyMap::default(),
            by_type_name: HashMap::new(),
            batches_by_collected: ProgramKeyMap::default(),
            triggers: ProgramKeyMap::default(),
            duplicates: Vec::new(),
        };
        for descriptor in all {
            index.by_type_id.insert((descriptor.type_id)(), descriptor);
            index
                .by_type_name
                .entry(descriptor.type_name)
                .or_default()
                .push(descriptor);
            let triggers = (descriptor.triggers)();
            for trigger in &triggers {
                let events = index.by_trigger.entry(trigger.key).or_default();
                if !events.contains(&descriptor) {
                    events.push(descriptor);
                }
            }
            index.triggers.insert((descriptor.type_id)(), triggers);
            if let Some(batch) = &descriptor.batch {
                for collected in (batch.collects)() {
                    index
                        .batches_by_collected
                        .entry(collected)
                        .or_default()
                        .push(descriptor);
                }
            }
        }
        index.duplicates = duplicate_types(&index.by_type_name);
        for duplicate in &index.duplicates {
            tracing::error!(%duplicate, "frontends cannot tell these events apart");
        }
        index
    })
}

/// Every event of the program, individual and batch, sorted by type string.
pub fn events() -> &'static [&'static EventDescriptor] {
    &index().all
}

/// The individual (non-batch) events.
pub fn individual_events() -> impl Iterator<Item = &'static EventDescriptor> {
    events().iter().copied().filter(|d| !d.is_batch())
}

/// The batch events.
pub fn batch_events() -> impl Iterator<Item = &'static EventDescriptor> {
    events().iter().copied().filter(|d| d.is_batch())
}

/// The events a change of `key` triggers.
pub fn events_triggered_by(key: TriggerKey) -> &'static [&'static EventDescriptor] {
    index().by_trigger.get(&key).map_or(&[], Vec::as_slice)
}

/// The triggers of `descriptor` with their context paths, computed once for the program.
pub fn triggers_of(descriptor: &EventDescriptor) -> &'static [TriggerSpec] {
    index()
        .triggers
        .get(&(descriptor.type_id)())
        .map_or(&[], Vec::as_slice)
}

/// The descriptor of the event type with this `TypeId`.
pub fn event_by_type_id(type_id: TypeId) -> Option<&'static EventDescriptor> {
    index().by_type_id.get(&type_id).copied()
}

/// The event whose JSON `type` is `type_name`.
pub fn event_by_type_name(type_name: &str) -> Option<&'static EventDescriptor> {
    index()
        .by_type_name
        .get(type_name)
        .and_then(|events| events.first().copied())
}

/// The batch events that collect events of type `collected`.
pub fn batches_collecting(collected: TypeId) -> &'static [&'static EventDescriptor] {
    index()
        .batches_by_collected
        .get(&collected)
        .map_or(&[], Vec::as_slice)
}

/// A problem with the registered events that the compiler cannot see across crates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two event types share one JSON `type` string: a frontend could not tell them apart.
    #[error("events `{first}` and `{second}` share the type string \"{type_name}\"")]
    DuplicateType {
        /// The shared `type` string.
        type_name: &'static str,
        /// One Rust type.
        first: &'static str,
        /// The other Rust type.
        second: &'static str,
    },
}

/// Checks the registry as a whole: every event the program links, whatever crate defines it.
/// Call it in a test of your application (or at start-up).
///
/// Within one crate, a shared `type` string is already a compile error; across crates only
/// this check sees it. A test to copy into the crate that links all your events:
///
/// ```
/// // In the tests of your application:
/// # /*
/// #[test]
/// # */
/// fn event_type_strings_are_unique() {
///     if let Err(duplicates) = mercure_track::registry::validate() {
///         panic!("{duplicates:#?}");
///     }
/// }
/// # event_type_strings_are_unique();
/// ```
pub fn validate() -> Result<(), Vec<RegistryError>> {
    let duplicates = &index().duplicates;
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(duplicates.clone())
    }
}

/// One error per pair of events sharing a type string, sorted by type string.
fn duplicate_types(
    by_type_name: &HashMap<&'static str, Vec<&'static EventDescriptor>>,
) -> Vec<RegistryError> {
    let mut by_name: Vec<_> = by_type_name.iter().collect();
    by_name.sort_by_key(|(name, _)| **name);
    by_name
        .into_iter()
        .flat_map(|(type_name, events)| {
            events.windows(2).map(|pair| RegistryError::DuplicateType {
                type_name,
                first: pair[0].rust_name,
                second: pair[1].rust_name,
            })
        })
        .collect()
}
