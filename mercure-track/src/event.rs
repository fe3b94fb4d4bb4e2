//! Events: the trait `#[derive(MercureEvent)]` implements, their static descriptors, and the
//! rules that build batch events from the individual events of a commit.

use std::any::{Any, TypeId};
use std::fmt;

use schemars::{Schema, SchemaGenerator};

use crate::model::{ColumnKey, ModelInfo, TriggerKey};
use crate::reach::Link;
use crate::wire::Update;

/// A Mercure event: a type string, topics, and a compact JSON body with `type` first.
///
/// Implemented by `#[derive(MercureEvent)]`; see the crate documentation for its attributes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Mercure event",
    label = "expected a type with `#[derive(MercureEvent)]`"
)]
pub trait MercureEvent: Any + Send + Sync + 'static {
    /// The `type` field of the JSON body (`"order_update"`).
    const TYPE: &'static str;

    /// The static description of the event, as registered in [`crate::registry`].
    fn descriptor() -> &'static EventDescriptor
    where
        Self: Sized;

    /// The topics this event is published to, placeholders filled from its fields.
    fn topics(&self) -> Vec<String>;

    /// Writes the JSON body: `{"type":"...", <fields in declaration order>}`, compact.
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;

    /// The JSON Schema of the body.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema
    where
        Self: Sized;

    /// Whether updates of this event are private (`#[mercure(private)]`).
    fn is_private(&self) -> bool;

    /// The JSON body as a string.
    fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut out = Vec::with_capacity(64);
        self.write_json(&mut out)?;
        // serde_json writes UTF-8 only; a hand-written `write_json` might not.
        String::from_utf8(out).map_err(<serde_json::Error as serde::ser::Error>::custom)
    }

    /// The Mercure update carrying this event.
    fn to_update(&self) -> Result<Update, serde_json::Error> {
        Ok(Update::new(self.topics(), self.to_json()?).private(self.is_private()))
    }
}

/// An event whose type is erased: what a session collects during a commit.
///
/// Its methods have names of their own so that they never clash with [`MercureEvent`]'s when
/// both traits are in scope.
pub trait AnyEvent: Send + Sync + 'static {
    /// The event's static description.
    fn event_descriptor(&self) -> &'static EventDescriptor;
    /// The event as [`Any`], to downcast to its concrete type.
    fn as_any(&self) -> &dyn Any;
    /// See [`MercureEvent::topics`].
    fn event_topics(&self) -> Vec<String>;
    /// See [`MercureEvent::to_json`].
    fn event_json(&self) -> Result<String, serde_json::Error>;
    /// See [`MercureEvent::to_update`].
    fn event_update(&self) -> Result<Update, serde_json::Error>;
}

impl<E: MercureEvent> AnyEvent for E {
    fn event_descriptor(&self) -> &'static EventDescriptor {
        E::descriptor()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn event_topics(&self) -> Vec<String> {
        self.topics()
    }
    fn event_json(&self) -> Result<String, serde_json::Error> {
        self.to_json()
    }
    fn event_update(&self) -> Result<Update, serde_json::Error> {
        self.to_update()
    }
}

impl fmt::Debug for dyn AnyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event_json() {
            Ok(json) => write!(f, "{}{json}", self.event_descriptor().rust_name),
            Err(_) => write!(f, "{}(..)", self.event_descriptor().rust_name),
        }
    }
}

/// Static description of an event type, registered by `#[derive(MercureEvent)]`.
///
/// The registry ([`crate::registry`]) holds one per event type of the program, with no list to
/// keep by hand.
pub struct EventDescriptor {
    /// The JSON `type` string.
    pub type_name: &'static str,
    /// The Rust type name (`"ImageUpdate"`).
    pub rust_name: &'static str,
    /// The topic templates, placeholders in braces (`"orders/{order_id}"`).
    pub topic_templates: &'static [&'static str],
    /// The `TypeId` of the event type.
    pub type_id: fn() -> TypeId,
    /// The triggers and, for each, how every context field is reached.
    pub triggers: fn() -> Vec<TriggerSpec>,
    /// For batch events: which events they collect and how they are built.
    pub batch: Option<BatchSpec>,
    /// The JSON Schema of the body.
    pub json_schema: fn(&mut SchemaGenerator) -> Schema,
}

impl EventDescriptor {
    /// Whether this is a batch event (`collect(...)`).
    pub fn is_batch(&self) -> bool {
        self.batch.is_some()
    }
}

impl fmt::Debug for EventDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventDescriptor")
            .field("type_name", &self.type_name)
            .field("rust_name", &self.rust_name)
            .field("topic_templates", &self.topic_templates)
            .field("batch", &self.batch.is_some())
            .finish_non_exhaustive()
    }
}

impl PartialEq for EventDescriptor {
    fn eq(&self, other: &Self) -> bool {
        (self.type_id)() == (other.type_id)()
    }
}
impl Eq for EventDescriptor {}

/// One trigger of an event and how each context field is resolved from the triggering row.
#[derive(Debug, Clone)]
pub struct TriggerSpec {
    /// The column or row change that fires the event.
    pub key: TriggerKey,
    /// The model whose rows fire it.
    pub model: ModelInfo,
    /// The context fields, in the event's field order.
    pub contexts: Vec<ContextPath>,
}

/// How one context field of an event is read from a triggering row.
#[derive(Debug, Clone)]
pub struct ContextPath {
    /// The event field (`"order_id"`).
    pub field: &'static str,
    /// The column whose value fills the field (`orders.id`).
    pub column: ColumnKey,
    /// The joins from the triggering model to the column's model; empty when they are the same.
    pub links: Vec<Link>,
}

/// The batch rule of a batch event.
#[derive(Clone, Copy)]
pub struct BatchSpec {
    /// The `TypeId`s of the collected events.
    pub collects: fn() -> Vec<TypeId>,
    /// Builds the batch event from a commit's individual events; `None` when there is nothing
    /// to publish.
    pub build: fn(&Collected<'_>) -> Option<Box<dyn AnyEvent>>,
}

/// The individual events of one commit, as seen by batch rules.
#[derive(Clone, Copy)]
pub struct Collected<'a> {
    events: &'a [Box<dyn AnyEvent>],
}

impl<'a> Collected<'a> {
    /// Wraps a commit's individual events.
    pub fn new(events: &'a [Box<dyn AnyEvent>]) -> Self {
        Self { events }
    }

    /// The events of type `E`, in the order they were produced.
    pub fn of<E: MercureEvent>(&self) -> impl Iterator<Item = &'a E> + 'a {
        self.events
            .iter()
            .filter_map(|event| event.as_any().downcast_ref::<E>())
    }

    /// All events, whatever their type.
    pub fn all(&self) -> &'a [Box<dyn AnyEvent>] {
        self.events
    }

    /// Whether no event was collected.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// A batch event: built once per commit from the individual events it collects.
pub trait BatchEvent: MercureEvent + Sized {
    /// Builds the event, or `None` when nothing it collects was published.
    fn from_collected(collected: &Collected<'_>) -> Option<Self>;
}

/// Why an event could not be built from a resolved context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The context source had no value for a field.
    #[error("no context value for field `{field}`")]
    Missing {
        /// The event field.
        field: &'static str,
    },
    /// The value could not be decoded into the field's type.
    #[error("context value for field `{field}` could not be decoded: {source}")]
    Decode {
        /// The event field.
        field: &'static str,
        /// The decoding error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where context values come from: a resolved row (the session) or a test's fixed values.
///
/// `field` is the index of the field among the event's context fields.
pub trait ContextSource<T> {
    /// The value of context field number `field`, named `name`.
    fn context_value(&mut self, field: usize, name: &'static str) -> Result<T, ContextError>;
}

/// Builds an event from its context values. Implemented by `#[derive(MercureEvent)]` for
/// every source that can produce each field's type.
pub trait FromContext<S>: Sized {
    /// Reads every context field from `source`.
    fn from_context(source: &mut S) -> Result<Self, ContextError>;
}
