//! Publish [Mercure](https://mercure.rocks) events automatically when database rows change.
//!
//! You declare which model fields trigger which events, write through a tracked session, and
//! after every commit the right events reach the right topics, batched, with their context
//! resolved; nothing is published for a rollback. Mistakes are compile errors.
//!
//! This crate holds the runtime (events, topics, batching, the registry, the publishers and the
//! development hub) and re-exports the three macros. The tracked session over sqlx lives in
//! `mercure-track-sqlx`.
//!
//! ```
//! use mercure_track::prelude::*;
//!
//! #[derive(Debug, Clone, Tracked)]
//! #[tracked(table = "orders")]
//! pub struct Order {
//!     #[tracked(primary_key)]
//!     pub id: String,
//!     pub status: String,
//! }
//!
//! #[derive(Debug, Clone, MercureEvent)]
//! #[mercure(type = "order_update", topic = "orders/{order_id}")]
//! #[trigger(Order::status)]
//! pub struct OrderUpdate {
//!     #[context(Order::id)]
//!     pub order_id: String,
//! }
//!
//! #[derive(Debug, Clone, MercureEvent)]
//! #[mercure(type = "list_update", topic = "orders", collect(OrderUpdate))]
//! pub struct ListUpdate {
//!     pub order_ids: Vec<String>,
//! }
//!
//! let event = OrderUpdate { order_id: "abc".into() };
//! assert_eq!(event.to_json()?, r#"{"type":"order_update","order_id":"abc"}"#);
//! assert_eq!(event.topics(), ["orders/abc"]);
//!
//! // `Order::status` is a typed column marker; the registry knows what it triggers.
//! let triggered = mercure_track::registry::events_triggered_by(Order::status.trigger_key());
//! assert_eq!(triggered[0].type_name, "order_update");
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # `#[derive(Tracked)]`
//!
//! On a model struct with named fields. It generates a typed column marker per field, reachable
//! as `Model::field` (an associated constant of type [`Column<Model, FieldType>`](Column),
//! [`KeyColumn<Model, FieldType>`](KeyColumn) for the primary key, or
//! [`ForeignKeyColumn<Model, FieldType, Parent>`](ForeignKeyColumn) for a `belongs_to` field),
//! the row markers `Model::INSERT` and `Model::DELETE`, and the [`Model`] implementation: table,
//! columns, primary key and `belongs_to` links.
//!
//! | attribute | on | meaning |
//! |---|---|---|
//! | `#[tracked(table = "orders")]` | struct | the SQL table (required) |
//! | `#[tracked(crate = ::mt)]` | struct | the path of this crate when it is a renamed dependency (`mt = { package = "mercure-track" }`); default `::mercure_track` |
//! | `#[tracked(primary_key)]` | field | the primary key (exactly one field); it has no setter and cannot be a trigger |
//! | `#[tracked(belongs_to = Parent)]` | field | a foreign key holding `Parent`'s primary key; contexts are reached through these links. A link to the model itself (a tree) is not searched: see [`reach`] |
//! | `#[tracked(column = "name")]` | field | the SQL column, when it differs from the field name (default: the field name, `ref` for `r#ref`) |
//! | `#[tracked(setter = "change_status")]` | field | the setter's name (default `set_<field>`); the by-key setter is `<name>_by_key` |
//! | `#[tracked(skip)]` | field | not a column: never written, not read by `find`, cannot be a trigger or a context (give it `#[sqlx(skip)]` too when the model derives `sqlx::FromRow`) |
//!
//! `Model::field.eq(value)` builds a typed context [`Predicate`]; the value must convert into the
//! column's type.
//!
//! For use with a tracked session (`mercure-track-sqlx`) the derive generates the setters,
//! generic over the session: `model.set_<field>(&mut session, value)` and
//! `Model::set_<field>_by_key(&mut session, key, value)` for every column but the key. Loading,
//! inserting and deleting rows are methods of the [`Model`] trait (in the [`prelude`]):
//! `Model::find(&mut session, key)`, `model.insert(&mut session)` and
//! `model.delete(&mut session)`. Being trait methods, they never hide methods of your own: an
//! inherent method of the same name wins, and a trait of yours with a `find` in scope next to
//! `Model` makes the call ambiguous, which the compiler reports. See [`session`] for code
//! generic over the database.
//!
//! The markers are associated constants, so a model cannot also have an inherent item named
//! like one of its fields (skipped fields included), nor inherent methods named like its
//! setters (rename a setter with `setter = "..."`).
//!
//! # `#[derive(MercureEvent)]`
//!
//! On a struct with named fields, no generics.
//!
//! | attribute | on | meaning |
//! |---|---|---|
//! | `#[mercure(type = "order_update")]` | struct | the JSON `type` (required); unique among the events of a crate (a compile error otherwise) and of a program (see below) |
//! | `#[mercure(topic = "orders/{order_id}")]` | struct | a topic template; repeat for several topics (at least one). Placeholders name fields of the event (`{ref}` for a field `r#ref`), whose values are formatted with `Display` |
//! | `#[mercure(private)]` | struct | publish private updates |
//! | `#[mercure(collect(EventA, EventB))]` | struct | a batch event built once per commit from these events |
//! | `#[mercure(from_collected = path::to::function)]` | struct | a hand-written batch rule `fn(&Collected<'_>) -> Option<Self>` instead of the built-in one |
//! | `#[mercure(crate = ::mt)]` | struct | the path of this crate when it is a renamed dependency; default `::mercure_track` |
//! | `#[trigger(Model::field, Model::INSERT, ...)]` | struct | the columns (or row changes) whose changes fire the event; not the primary key (never written) nor a skipped field (not a column) |
//! | `#[context(Model::column)]` | field | the column the field's value is read from; the field's type must be the column's type |
//! | `#[context(Model::column, via(Trigger::foreign_key, ...))]` | field | as above, taking the given `belongs_to` column of a trigger's model as the first link where two chains lead to the column's model |
//! | `#[mercure(from = "order_id")]` | field of a batch event | the field of the collected events gathered into this one (default: this field's name without its final `s`) |
//!
//! Keys of one `#[mercure(...)]` may be split over several attributes. Every field of a
//! triggered event needs `#[context(...)]`. Models in `#[trigger]`, `#[context]` and `via`
//! are compared as types: `self::Reply::body` and `Reply::id` are on the same model.
//!
//! **Serialization** is the wire format of the existing frontend: compact JSON, `type` first,
//! then the fields in declaration order (`{"type":"image_update","order_id":"abc","image_id":7}`).
//! Fields are named as serde names them: a field `r#ref` is `"ref"` in the JSON and the schema.
//! Fields need [`serde::Serialize`] and [`schemars::JsonSchema`]; the event type itself needs
//! neither derive.
//!
//! **The built-in batch rule**: for each field (a collection such as `Vec<String>`), gather the
//! `from` field of every collected event, sort, remove duplicates; when every field is empty, no
//! batch event is published.
//!
//! **Reachability**: for every trigger and every context column, the trigger's model must be the
//! context column's model or reach it through `belongs_to` links; otherwise the compiler reports
//! "`ColoringVersion` cannot reach `Customer` through `belongs_to` links". See [`reach`] for how
//! the path is inferred and its limits.
//!
//! **Unique type strings.** Two events of one crate with the same `type` are a compile error
//! on both `type = "..."` literals ("the name `__mercure_track_event_type_..._is_used_by_two_events`
//! is defined multiple times": the check is a hidden exported macro per type string). Events
//! of different crates are only seen together at run time: [`registry::validate`] reports every
//! shared type string, and its documentation has a test to copy into your application, which
//! links all its events and so checks the whole program.
//!
//! # `#[mercure_autotrack(EventA, EventB)]`
//!
//! On a service struct with a `session` field of a tracked session type (`TrackedSession<DB>`
//! from `mercure-track-sqlx`); anything else is a compile error on the struct or the field.
//! Put the same attribute, without events, on the service's `impl` block (one block per
//! service): every method taking `&mut self` or `mut self` then starts by tracking the listed
//! events on the session, and every constructor returning `Self` tracks them on the value it
//! builds. This is the Rust form of the original design's wrapped constructor; no
//! `track_changes` call appears in the service's own code. [`AutoTracked`] exposes the events
//! and their trigger columns at run time.
//!
//! The two attributes cannot be half-applied: a struct whose `impl` block lacks the attribute
//! is a compile error saying to add it. `crate = path` may follow the events (on the struct)
//! or stand alone (on the `impl` block) for a renamed dependency.
//!
//! **Untracked events.** A session records a change only for the events it tracks (through
//! an auto-tracked service or `track_changes`), from the moment tracking starts. A write to a
//! trigger column of an event the session does not track publishes nothing for that event, and
//! tracking an event later does not pick up writes made before. With `#[mercure_autotrack]`
//! the window is closed: constructors track before returning, and a service built by a struct
//! literal tracks at the start of its first `&mut self` method, before any write through it.
//!
//! ```
//! # use mercure_track::prelude::*;
//! # use mercure_track::{FromContext, MercureEvent, TrackingSession};
//! # #[derive(Debug, Clone, Tracked)]
//! # #[tracked(table = "orders")]
//! # pub struct Order { #[tracked(primary_key)] pub id: String, pub status: String }
//! # #[derive(Debug, Clone, MercureEvent)]
//! # #[mercure(type = "order_update", topic = "orders/{order_id}")]
//! # #[trigger(Order::status)]
//! # pub struct OrderUpdate { #[context(Order::id)] pub order_id: String }
//! // A stand-in for `TrackedSession<DB>` that records what is tracked.
//! #[derive(Default)]
//! pub struct Session(Vec<&'static str>);
//! pub struct NoContext;
//! impl<T> mercure_track::ContextSource<T> for NoContext {
//!     fn context_value(&mut self, _: usize, name: &'static str) -> Result<T, mercure_track::ContextError> {
//!         Err(mercure_track::ContextError::Missing { field: name })
//!     }
//! }
//! impl TrackingSession for Session {
//!     type ContextSource = NoContext;
//!     fn track_event<E: MercureEvent + FromContext<NoContext>>(&mut self) {
//!         self.0.push(E::TYPE);
//!     }
//! }
//!
//! #[mercure_autotrack(OrderUpdate)]
//! pub struct OrderIngestion {
//!     session: Session,
//! }
//!
//! #[mercure_autotrack]
//! impl OrderIngestion {
//!     pub fn new() -> Self {
//!         Self { session: Session::default() }
//!     }
//! }
//!
//! let service = OrderIngestion::new();
//! assert_eq!(service.session.0, ["order_update"]);
//! assert_eq!(OrderIngestion::trigger_keys(), [Order::status.trigger_key()]);
//! ```
//!
//! # Generated code
//!
//! Like serde_derive's: it names items by absolute paths only (`::core`, `::std`, and this
//! crate's hidden, versioned support module, under `crate = path` when given), calls trait
//! methods through their traits, and names its locals with a `__` prefix. It therefore compiles
//! in `#[no_implicit_prelude]` modules and next to unit structs of any name. The support module
//! is versioned and `mercure-track` depends on exactly one version of the derive crate, so a
//! mismatch is a compile error, not a misbehaviour.
//!
//! # Publishing and the development hub
//!
//! [`HubPublisher`] publishes to a Mercure hub, with one pooled HTTP client and one signed JWT;
//! [`RecordingPublisher`] records, for tests. The [`publisher`] module shows publishing by hand
//! (an event, or any [`Update`]). With the `dev-hub` feature, `hub::DevHub` is a small hub for
//! development and tests; its module documentation shows how to start one
//! (`cargo run -p mercure-track --features dev-hub --example dev_hub` starts one alone).
//!
//! # Registries
//!
//! Every derived event registers itself at link time: [`registry::events`] lists them all,
//! [`registry::events_triggered_by`] maps a changed column to its events with one hash lookup,
//! and [`schema::all_events_schema`] gives the JSON Schema of the union, for frontend type
//! generators.

pub mod autotrack;
pub mod event;
#[cfg(feature = "dev-hub")]
pub mod hub;
pub mod model;
pub mod protocol;
pub mod publisher;
pub mod reach;
pub mod registry;
pub mod schema;
pub mod session;
pub mod set_based;
pub mod subscriber;
pub mod wire;

pub use autotrack::{AutoTracked, TrackingSession};
pub use event::{
    AnyEvent, BatchEvent, BatchSpec, Collected, ContextError, ContextPath, ContextSource,
    EventDescriptor, FromContext, MercureEvent, TriggerSpec,
};
pub use model::{
    Column, ColumnInfo, ColumnKey, ForeignKeyColumn, KeyColumn, Model, ModelInfo, Predicate,
    RowChange, RowTrigger, Trigger, TriggerKey,
};
pub use protocol::ProtocolVersion;
pub use publisher::{
    HubConfig, HubPublisher, PublishError, PublishOutcome, Publisher, PublisherExt,
    RecordingPublisher,
};
pub use session::{DeleteRow, FindRow, InsertRow, WriteColumn};
pub use set_based::{
    Assignable, Condition, DeleteRows, DeleteWhere, Filter, InsertRows, SetValue, UpdateRows,
    UpdateWhere,
};
pub use wire::Update;

/// `#[derive(MercureEvent)]`: see the [crate documentation](crate#derivemercureevent).
pub use mercure_track_derive::MercureEvent;
/// `#[derive(Tracked)]`: see the [crate documentation](crate#derivetracked).
pub use mercure_track_derive::Tracked;
/// `#[mercure_autotrack(...)]`: see the [crate documentation](crate#mercure_autotrackeventa-eventb).
pub use mercure_track_derive::mercure_autotrack;

/// The names most programs need: `use mercure_track::prelude::*;`.
pub mod prelude {
    pub use crate::autotrack::AutoTracked;
    pub use crate::event::{BatchEvent, Collected, MercureEvent};
    pub use crate::model::{Model, Trigger};
    pub use mercure_track_derive::{MercureEvent, Tracked, mercure_autotrack};
}

/// The version of the paths below; `#[derive(...)]` of another version of
/// `mercure-track-derive` names another module and fails to compile instead of misbehaving.
/// Not public API: may change in any release.
#[doc(hidden)]
pub mod __private_v0_1 {
    pub use ::core;
    pub use ::inventory;
    pub use ::schemars;
    pub use ::serde;
    pub use ::serde_json;
    pub use ::std;

    pub use crate::autotrack::{AutoTracked, TrackingSession};
    pub use crate::event::{
        AnyEvent, BatchEvent, BatchSpec, Collected, ContextError, ContextPath, ContextSource,
        EventDescriptor, FromContext, MercureEvent, TriggerSpec,
    };
    pub use crate::model::check::{ContextColumn, Marker, NotPrimaryKey, NotSkipped};
    pub use crate::model::{
        Column, ColumnInfo, ColumnKey, ForeignKeyColumn, KeyColumn, Model, ModelInfo, RowChange,
        RowTrigger, SkippedField, Trigger, TriggerKey,
    };
    pub use crate::reach::{Cons, ForeignKey, Link, MaxDepth, Nil, Reaches};
    pub use crate::registry::Registration;
    pub use crate::schema::object_schema;
    pub use crate::session::{BindColumns, BindValue, DeleteRow, FindRow, InsertRow, WriteColumn};
    pub use crate::set_based::SetValue;

    /// Checks that `trigger` is a marker that can fire and returns its spec; `contexts`
    /// receives the trigger's model (as a type) to search the context paths from.
    pub fn trigger<Tr>(
        trigger: Tr,
        contexts: impl FnOnce(::core::marker::PhantomData<Tr::Model>) -> Vec<ContextPath>,
    ) -> TriggerSpec
    where
        Tr: Marker,
        Tr::IfKey: NotPrimaryKey,
        Tr::IfSkipped: NotSkipped,
    {
        TriggerSpec {
            key: trigger.marker_key(),
            model: <Tr::Model as Model>::info(),
            contexts: contexts(::core::marker::PhantomData),
        }
    }

    /// The key of a context column, checking that its values have the field's type `T`.
    pub fn context_column<T, C>(column: C) -> ColumnKey
    where
        C: ContextColumn<T>,
        C::IfSkipped: NotSkipped,
    {
        column.context_key()
    }

    /// The model of a marker, as a value the compiler knows the type of before it searches a
    /// path: `path(model_of(&trigger), model_of(&context))` then compares models as types,
    /// however their paths are spelled.
    pub fn model_of<M: Marker>(_marker: &M) -> ::core::marker::PhantomData<M::Model> {
        ::core::marker::PhantomData
    }

    /// A trigger's model and a context's model, as types. Built first, so that both are known
    /// before the path search starts (else the search could make one the other).
    pub struct Models<From, To>(
        pub ::core::marker::PhantomData<From>,
        pub ::core::marker::PhantomData<To>,
    );

    impl<From, To> Models<From, To> {
        /// The joins from model `From` to model `To`, inferred by the compiler: none when they
        /// are the same model.
        pub fn path<P>(self) -> Vec<Link>
        where
            From: Reaches<To, P, MaxDepth, From>,
        {
            crate::reach::path::<From, To, P>()
        }

        /// A context path that starts with the foreign key `via` of the trigger's model and
        /// continues from its parent by inference.
        pub fn path_via<T, Parent, P>(self, via: ForeignKeyColumn<From, T, Parent>) -> Vec<Link>
        where
            From: Model,
            Parent: Model + Reaches<To, P, MaxDepth, Parent>,
        {
            let mut links = vec![via.link()];
            links.extend(crate::reach::path::<Parent, To, P>());
            links
        }
    }

    /// Sorted, unique values: the built-in batch rule.
    pub fn sorted_unique<T: Ord, C: FromIterator<T>>(mut values: Vec<T>) -> C {
        values.sort();
        values.dedup();
        values.into_iter().collect()
    }

    /// A foreign key field holds its parent's key, or an optional one.
    #[diagnostic::on_unimplemented(
        message = "a `belongs_to` field of type `{Self}` cannot hold the parent's key of type `{K}`",
        label = "the field's type must be the parent's key type, or an `Option` of it"
    )]
    pub trait ForeignKeyOf<K> {}
    impl<K> ForeignKeyOf<K> for K {}
    impl<K> ForeignKeyOf<K> for Option<K> {}

    /// Checks a `belongs_to` field's type against the parent's key.
    pub fn assert_foreign_key<F: ForeignKeyOf<K>, K>() {}

    /// Checks, for `#[mercure_autotrack]`, that the `session` field has a tracked session type.
    pub fn assert_tracking_session<S: TrackingSession + ?Sized>() {}

    /// Implemented by `#[mercure_autotrack]` on a service's `impl` block: the struct's
    /// attribute requires it, so that tracking cannot be half-applied.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is marked `#[mercure_autotrack(...)]`, but no `impl` block of it is: its methods would not track",
        label = "add `#[mercure_autotrack]` (no arguments) to the `impl` block of this service",
        note = "the `impl` block's attribute makes constructors returning `Self` and methods taking `&mut self` start tracking"
    )]
    pub trait AutotrackImpl {}

    /// Checks, for `#[mercure_autotrack(...)]` on a struct, that its `impl` block has the
    /// attribute too.
    pub fn assert_autotrack_impl<S: AutotrackImpl + ?Sized>() {}
}
