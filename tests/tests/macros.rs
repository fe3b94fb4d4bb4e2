//! The generated code of the three macros, exercised by running it.

use std::any::TypeId;
use std::collections::HashMap;

use mercure_track::prelude::*;
use mercure_track::{
    AnyEvent, ContextError, ContextSource, FromContext, MercureEvent, TrackingSession, registry,
    schema,
};
use mercure_track_tests::domain::*;

#[test]
fn wire_format_is_type_first_compact_in_declaration_order() {
    let order = OrderUpdate {
        order_id: "abc".into(),
    };
    assert_eq!(
        order.to_json().unwrap(),
        r#"{"type":"order_update","order_id":"abc"}"#
    );
    let image = ImageUpdate {
        order_id: "abc".into(),
        image_id: 7,
    };
    assert_eq!(
        image.to_json().unwrap(),
        r#"{"type":"image_update","order_id":"abc","image_id":7}"#
    );
    let list = ListUpdate {
        order_ids: vec!["abc".into(), "def".into()],
    };
    assert_eq!(
        list.to_json().unwrap(),
        r#"{"type":"list_update","order_ids":["abc","def"]}"#
    );
    let status = OrderStatusChanged {
        order_id: "a\"b".into(),
        status: OrderStatus::ReadyForReview,
    };
    assert_eq!(
        status.to_json().unwrap(),
        r#"{"type":"order_status","order_id":"a\"b","status":"ReadyForReview"}"#
    );
}

#[test]
fn topics_fill_placeholders_and_updates_carry_privacy() {
    let image = ImageUpdate {
        order_id: "abc".into(),
        image_id: 7,
    };
    assert_eq!(image.topics(), ["orders/abc"]);
    let update = image.to_update().unwrap();
    assert!(update.private);
    assert_eq!(update.topics, ["orders/abc"]);
    let category = CategoryUpdate { category_id: 3 };
    assert_eq!(category.topics(), ["categories/3", "categories"]);
    assert!(!category.to_update().unwrap().private);
    assert_eq!(ListUpdate { order_ids: vec![] }.topics(), ["orders"]);
}

#[test]
fn column_markers_carry_table_column_and_key_metadata() {
    assert_eq!(Order::status.name(), "status");
    assert_eq!(Image::selected_svg_id.name(), "selected_svg");
    assert_eq!(Image::selected_svg_id.info().field, "selected_svg_id");
    assert_eq!(
        format!("{:?}", ColoringVersion::status),
        "ColoringVersion::status"
    );
    assert_eq!(<Order as Model>::TABLE, "orders");
    // `note` is skipped: two columns only.
    assert_eq!(<Order as Model>::COLUMNS.len(), 2);
    assert_eq!(<Image as Model>::info().primary_key_column().name, "id");
    assert_eq!(ColoringVersion::image_id.info().belongs_to, Some("images"));
    let order = Order {
        id: "k".into(),
        status: "NEW".into(),
        note: None,
    };
    assert_eq!(order.key(), "k");
}

#[test]
fn predicates_are_typed() {
    let by_order = Order::id.eq("abc");
    assert_eq!(by_order.column().to_string(), "orders.id");
    assert_eq!(by_order.value::<String>().map(String::as_str), Some("abc"));
    assert_eq!(by_order.value::<i64>(), None);
    let by_version = ColoringVersion::id.eq(7);
    assert_eq!(by_version.value::<i64>(), Some(&7));
}

#[test]
fn registry_finds_events_by_trigger_without_a_hand_kept_list() {
    let names = |key| {
        let mut names: Vec<_> = registry::events_triggered_by(key)
            .iter()
            .map(|d| d.type_name)
            .collect();
        names.sort_unstable();
        names
    };
    assert_eq!(names(Order::status.trigger_key()), ["order_update"]);
    assert_eq!(names(Order::INSERT.trigger_key()), ["order_update"]);
    assert_eq!(
        names(Image::selected_svg_id.trigger_key()),
        ["image_update"]
    );
    assert_eq!(
        names(ColoringVersion::status.trigger_key()),
        ["image_update"]
    );
    assert!(names(Order::DELETE.trigger_key()).is_empty());
    assert!(names(LineItem::order_id.trigger_key()).is_empty());

    let all: Vec<_> = registry::events().iter().map(|d| d.type_name).collect();
    for expected in [
        "order_update",
        "image_update",
        "list_update",
        "category_update",
        "image_count",
        "order_status",
    ] {
        assert!(all.contains(&expected), "{expected} missing from {all:?}");
    }
    let batches: Vec<_> = registry::batch_events().map(|d| d.rust_name).collect();
    assert!(batches.contains(&"ListUpdate") && batches.contains(&"ImageCount"));
    assert!(registry::individual_events().all(|d| !d.is_batch()));
    assert_eq!(
        registry::batches_collecting(TypeId::of::<OrderUpdate>())
            .iter()
            .map(|d| d.rust_name)
            .collect::<Vec<_>>(),
        ["ListUpdate"]
    );
    assert_eq!(
        registry::event_by_type_name("image_update").map(|d| d.rust_name),
        Some("ImageUpdate")
    );
}

#[test]
fn validate_reports_type_strings_shared_across_crates() {
    // `mercure_track_renamed::LegacyOrderUpdate` shares "order_update" with the domain's
    // `OrderUpdate`; within one crate that is a compile error (tests/ui), across crates only
    // the whole program can see it.
    let _ = mercure_track_renamed::LegacyOrderUpdate::descriptor();
    let duplicates = registry::validate().expect_err("a shared type string");
    assert_eq!(
        duplicates,
        [registry::RegistryError::DuplicateType {
            type_name: "order_update",
            first: "LegacyOrderUpdate",
            second: "OrderUpdate",
        }]
    );
}

#[test]
fn context_paths_follow_belongs_to_links_per_trigger() {
    let triggers = (ImageUpdate::descriptor().triggers)();
    assert_eq!(triggers.len(), 4);
    let from_coloring = &triggers[0];
    assert_eq!(from_coloring.model.table, "coloring_versions");
    let order = &from_coloring.contexts[0];
    assert_eq!(order.field, "order_id");
    assert_eq!(order.column.to_string(), "orders.id");
    let hops: Vec<_> = order
        .links
        .iter()
        .map(|l| format!("{}.{}->{}", l.from.table, l.foreign_key.name, l.to.table))
        .collect();
    assert_eq!(
        hops,
        [
            "coloring_versions.image_id->images",
            "images.line_item_id->line_items",
            "line_items.order_id->orders"
        ]
    );
    let image = &from_coloring.contexts[1];
    assert_eq!(image.column.to_string(), "images.id");
    assert_eq!(image.links.len(), 1);

    // Triggered on the image itself: the image id needs no join, the order two.
    let from_image = &triggers[2];
    assert_eq!(from_image.key, Image::selected_coloring_id.trigger_key());
    assert!(from_image.contexts[1].links.is_empty());
    assert_eq!(from_image.contexts[0].links.len(), 2);

    // A model that belongs to itself reaches itself without a join.
    let category = (CategoryUpdate::descriptor().triggers)();
    assert!(category[0].contexts[0].links.is_empty());
}

#[test]
fn builtin_batch_rule_sorts_dedups_and_skips_empty_commits() {
    let events: Vec<Box<dyn AnyEvent>> = vec![
        Box::new(OrderUpdate {
            order_id: "def".into(),
        }),
        Box::new(ImageUpdate {
            order_id: "zzz".into(),
            image_id: 1,
        }),
        Box::new(OrderUpdate {
            order_id: "abc".into(),
        }),
        Box::new(OrderUpdate {
            order_id: "def".into(),
        }),
    ];
    let collected = Collected::new(&events);
    assert_eq!(
        ListUpdate::from_collected(&collected),
        Some(ListUpdate {
            order_ids: vec!["abc".into(), "def".into()]
        })
    );
    assert_eq!(
        ImageCount::from_collected(&collected),
        Some(ImageCount { count: 1 })
    );

    let only_images: Vec<Box<dyn AnyEvent>> = vec![Box::new(ImageUpdate {
        order_id: "x".into(),
        image_id: 2,
    })];
    assert_eq!(
        ListUpdate::from_collected(&Collected::new(&only_images)),
        None
    );
    assert_eq!(ListUpdate::from_collected(&Collected::new(&[])), None);

    // Through the erased descriptor, as a session does.
    let build = ListUpdate::descriptor().batch.expect("batch").build;
    let built = build(&collected).expect("a batch event");
    assert_eq!(
        built.event_json().unwrap(),
        r#"{"type":"list_update","order_ids":["abc","def"]}"#
    );
}

/// A context source with fixed values per field name.
struct Fixed(HashMap<&'static str, serde_json::Value>);

impl<T: serde::de::DeserializeOwned> ContextSource<T> for Fixed {
    fn context_value(&mut self, _field: usize, name: &'static str) -> Result<T, ContextError> {
        let value = self
            .0
            .get(name)
            .cloned()
            .ok_or(ContextError::Missing { field: name })?;
        serde_json::from_value(value).map_err(|e| ContextError::Decode {
            field: name,
            source: e.into(),
        })
    }
}

#[test]
fn events_are_built_from_context_values() {
    let mut source = Fixed(HashMap::from([
        ("order_id", serde_json::json!("abc")),
        ("image_id", serde_json::json!(7)),
    ]));
    let event = ImageUpdate::from_context(&mut source).unwrap();
    assert_eq!(
        event,
        ImageUpdate {
            order_id: "abc".into(),
            image_id: 7
        }
    );

    let mut missing = Fixed(HashMap::from([("order_id", serde_json::json!("abc"))]));
    let error = ImageUpdate::from_context(&mut missing).unwrap_err();
    assert!(
        matches!(error, ContextError::Missing { field: "image_id" }),
        "{error}"
    );
}

#[test]
fn json_schema_per_event_and_union() {
    let one = schema::event_schema::<ImageUpdate>().to_value();
    assert_eq!(one["properties"]["type"]["const"], "image_update");
    assert_eq!(one["properties"]["image_id"]["type"], "integer");
    assert_eq!(
        one["required"],
        serde_json::json!(["type", "order_id", "image_id"])
    );
    assert_eq!(one["additionalProperties"], false);

    let union = schema::all_events_schema().to_value();
    let mapping = &union["discriminator"]["mapping"];
    assert_eq!(mapping["list_update"], "#/$defs/ListUpdate");
    assert_eq!(
        union["$defs"]["ListUpdate"]["properties"]["order_ids"]["type"],
        "array"
    );
    // The status enum of a hand-published event is a shared definition.
    assert!(union["$defs"]["OrderStatus"].is_object(), "{union:#}");
    assert!(union["oneOf"].as_array().is_some_and(|a| a.len() >= 6));
}

/// A stand-in session recording what is tracked.
#[derive(Default)]
struct RecordingSession {
    tracked: Vec<&'static str>,
}

impl TrackingSession for RecordingSession {
    type ContextSource = Fixed;
    fn track_event<E: MercureEvent + FromContext<Fixed>>(&mut self) {
        if !self.tracked.contains(&E::TYPE) {
            self.tracked.push(E::TYPE);
        }
    }
}

#[mercure_autotrack(ImageUpdate, OrderUpdate)]
struct ColoringService {
    session: RecordingSession,
    calls: usize,
}

#[mercure_autotrack]
impl ColoringService {
    fn new() -> Self {
        Self {
            session: RecordingSession::default(),
            calls: 0,
        }
    }

    async fn build_later() -> Self {
        Self {
            session: RecordingSession::default(),
            calls: 0,
        }
    }

    fn process(&mut self) -> usize {
        self.calls += 1;
        self.session.tracked.len()
    }

    fn peek(&self) -> usize {
        self.session.tracked.len()
    }

    fn consume(mut self) -> usize {
        self.calls += 1;
        self.session.tracked.len()
    }
}

#[test]
fn autotrack_tracks_in_constructors_and_mut_methods() {
    let mut service = ColoringService::new();
    assert_eq!(service.session.tracked, ["image_update", "order_update"]);
    // Idempotent: methods track again, nothing is added.
    assert_eq!(service.process(), 2);
    assert_eq!(service.peek(), 2);

    // A service built by a struct literal starts tracking in its first `&mut self` method.
    let mut literal = ColoringService {
        session: RecordingSession::default(),
        calls: 0,
    };
    assert_eq!(literal.peek(), 0);
    assert_eq!(literal.process(), 2);

    // A method taking `mut self` tracks too.
    let by_value = ColoringService {
        session: RecordingSession::default(),
        calls: 0,
    };
    assert_eq!(by_value.consume(), 2);

    let built = futures_util::FutureExt::now_or_never(ColoringService::build_later()).unwrap();
    assert_eq!(built.peek(), 2);

    let events: Vec<_> = ColoringService::tracked_events()
        .iter()
        .map(|d| d.type_name)
        .collect();
    assert_eq!(events, ["image_update", "order_update"]);
    let keys: Vec<_> = ColoringService::trigger_keys()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        keys,
        [
            "coloring_versions.status",
            "images.selected_coloring_id",
            "images.selected_svg",
            "orders.status",
            "svg_versions.status",
            "orders:Insert"
        ]
    );
}

mod diamond {
    //! Two chains from a picture to its order: the compiler cannot choose, `via` does.
    use mercure_track::prelude::*;
    use mercure_track_tests::domain::{LineItem, Order};

    #[derive(Debug, Tracked)]
    #[tracked(table = "pictures")]
    struct Picture {
        #[tracked(primary_key)]
        id: i64,
        #[tracked(belongs_to = LineItem)]
        line_item_id: i64,
        #[tracked(belongs_to = Order)]
        order_id: String,
        status: String,
    }

    #[derive(Debug, MercureEvent)]
    #[mercure(type = "picture_update", topic = "orders/{order_id}")]
    #[trigger(Picture::status, LineItem::INSERT)]
    struct PictureUpdate {
        #[context(Order::id, via(Picture::line_item_id))]
        order_id: String,
    }

    #[test]
    fn via_names_the_first_link_and_the_rest_is_inferred() {
        let triggers = (PictureUpdate::descriptor().triggers)();
        let hops = |n: usize| -> Vec<String> {
            triggers[n].contexts[0]
                .links
                .iter()
                .map(|l| format!("{}.{}->{}", l.from.table, l.foreign_key.name, l.to.table))
                .collect()
        };
        assert_eq!(
            hops(0),
            [
                "pictures.line_item_id->line_items",
                "line_items.order_id->orders"
            ]
        );
        // The other trigger's model has one chain: inferred as usual.
        assert_eq!(hops(1), ["line_items.order_id->orders"]);
        // A foreign-key marker is still a column.
        assert_eq!(Picture::order_id.name(), "order_id");
        assert_eq!(
            Picture::line_item_id.eq(3).column().to_string(),
            "pictures.line_item_id"
        );
    }
}

mod raw_identifiers {
    //! Raw identifiers are named as serde names them: `r#ref` is `ref` in the JSON, the schema,
    //! topic placeholders, `from = "..."`, column names and setters.
    use mercure_track::prelude::*;
    use mercure_track::schema;

    #[derive(Debug, Clone, Tracked)]
    #[tracked(table = "notes")]
    pub(crate) struct Note {
        #[tracked(primary_key)]
        pub(crate) id: i64,
        pub(crate) r#ref: String,
        pub(crate) r#type: String,
    }

    #[derive(Debug, Clone, PartialEq, MercureEvent)]
    #[mercure(type = "note_ref", topic = "notes/{ref}/{type}")]
    #[trigger(Note::r#ref, Note::r#type)]
    pub(crate) struct NoteRef {
        #[context(Note::r#ref)]
        pub(crate) r#ref: String,
        #[context(Note::r#type)]
        pub(crate) r#type: String,
    }

    #[derive(Debug, Clone, PartialEq, MercureEvent)]
    #[mercure(type = "note_refs", topic = "notes", collect(NoteRef))]
    pub(crate) struct NoteRefs {
        #[mercure(from = "ref")]
        pub(crate) r#match: Vec<String>,
    }

    #[test]
    fn no_r_hash_in_json_schema_topics_or_columns() {
        let event = NoteRef {
            r#ref: "x".into(),
            r#type: "memo".into(),
        };
        assert_eq!(
            event.to_json().unwrap(),
            r#"{"type":"note_ref","ref":"x","type":"memo"}"#
        );
        assert_eq!(event.topics(), ["notes/x/memo"]);
        let schema = schema::event_schema::<NoteRef>().to_value();
        assert!(schema["properties"]["ref"].is_object(), "{schema:#}");
        assert!(schema["properties"].get("r#ref").is_none(), "{schema:#}");
        assert_eq!(Note::r#ref.name(), "ref");
        assert_eq!(Note::r#ref.info().field, "ref");
        let triggers = (NoteRef::descriptor().triggers)();
        assert_eq!(triggers[0].contexts[0].field, "ref");

        let events: Vec<Box<dyn mercure_track::AnyEvent>> = vec![Box::new(event)];
        let batch = NoteRefs::from_collected(&Collected::new(&events)).expect("a batch");
        assert_eq!(
            batch.to_json().unwrap(),
            r#"{"type":"note_refs","match":["x"]}"#
        );
    }
}

/// A stand-in session for the modules below, which may not name the prelude.
#[derive(Default)]
pub(crate) struct PlainSession {
    tracked: Vec<&'static str>,
}

impl TrackingSession for PlainSession {
    type ContextSource = Fixed;
    fn track_event<E: MercureEvent + FromContext<Fixed>>(&mut self) {
        self.tracked.push(E::TYPE);
    }
}

#[no_implicit_prelude]
#[allow(non_camel_case_types, dead_code)]
mod hygiene {
    //! Generated code in a module without the prelude, next to unit structs named like every
    //! local the macros could use: it compiles and behaves as anywhere else.
    use ::mercure_track::{MercureEvent, Tracked, mercure_autotrack};

    pub(crate) struct value;
    pub(crate) struct key;
    pub(crate) struct session;
    pub(crate) struct state;
    pub(crate) struct changed;
    pub(crate) struct binder;
    pub(crate) struct serializer;
    pub(crate) struct generator;
    pub(crate) struct source;
    pub(crate) struct collected;
    pub(crate) struct event;
    pub(crate) struct out;
    pub(crate) struct service;
    pub(crate) struct widget_ids;

    #[derive(::core::fmt::Debug, ::core::clone::Clone, Tracked)]
    #[tracked(table = "widgets")]
    pub(crate) struct Widget {
        #[tracked(primary_key)]
        pub(crate) id: i64,
        #[tracked(belongs_to = Widget)]
        pub(crate) parent_id: ::core::option::Option<i64>,
        pub(crate) name: ::std::string::String,
    }

    #[derive(::core::fmt::Debug, MercureEvent)]
    #[mercure(
        type = "widget_update",
        topic = "widgets/{widget_id}",
        topic = "widgets"
    )]
    #[trigger(Widget::name, self::Widget::INSERT)]
    pub(crate) struct WidgetUpdate {
        #[context(Widget::id)]
        pub(crate) widget_id: i64,
    }

    #[derive(::core::fmt::Debug, MercureEvent)]
    #[mercure(type = "widget_list", topic = "widgets", collect(WidgetUpdate))]
    pub(crate) struct WidgetList {
        pub(crate) widget_ids: ::std::vec::Vec<i64>,
    }

    #[mercure_autotrack(WidgetUpdate)]
    pub(crate) struct WidgetService {
        pub(crate) session: super::PlainSession,
    }

    #[mercure_autotrack]
    impl WidgetService {
        pub(crate) fn new() -> Self {
            Self {
                session: <super::PlainSession as ::core::default::Default>::default(),
            }
        }
    }
}

#[test]
fn generated_code_needs_no_prelude_and_no_free_local_names() {
    use hygiene::{WidgetList, WidgetService, WidgetUpdate};
    let event = WidgetUpdate { widget_id: 4 };
    assert_eq!(
        event.to_json().unwrap(),
        r#"{"type":"widget_update","widget_id":4}"#
    );
    assert_eq!(event.topics(), ["widgets/4", "widgets"]);
    let events: Vec<Box<dyn AnyEvent>> =
        vec![Box::new(WidgetUpdate { widget_id: 9 }), Box::new(event)];
    let list = WidgetList::from_collected(&Collected::new(&events)).expect("a batch");
    assert_eq!(list.widget_ids, [4, 9]);
    assert_eq!(WidgetService::new().session.tracked, ["widget_update"]);
    // A tree: the trigger's and the context's model are the same type, spelled differently.
    let triggers = (WidgetUpdate::descriptor().triggers)();
    assert!(triggers.iter().all(|t| t.contexts[0].links.is_empty()));
}

#[test]
fn generated_code_follows_a_renamed_runtime_crate() {
    use mercure_track_renamed::{Gadget, GadgetList, GadgetService, GadgetUpdate};
    let event = GadgetUpdate { gadget_id: 2 };
    assert_eq!(
        event.to_json().unwrap(),
        r#"{"type":"gadget_update","gadget_id":2}"#
    );
    let events: Vec<Box<dyn AnyEvent>> = vec![Box::new(event)];
    assert_eq!(
        GadgetList::from_collected(&Collected::new(&events)),
        Some(GadgetList {
            gadget_ids: vec![2]
        })
    );
    assert_eq!(GadgetService::new().session.tracked, ["gadget_update"]);
    assert_eq!(<Gadget as Model>::TABLE, "gadgets");
    assert_eq!(
        registry::events_triggered_by(Gadget::name.trigger_key())[0].type_name,
        "gadget_update"
    );
}

mod same_model_spelled_twice {
    //! A trigger and a context on the same model, the model spelled two ways, on a tree (a
    //! model that belongs to itself): no join, no ambiguity.
    use mercure_track::prelude::*;

    #[derive(Debug, Clone, Tracked)]
    #[tracked(table = "replies")]
    pub(crate) struct Reply {
        #[tracked(primary_key)]
        pub(crate) id: i64,
        #[tracked(belongs_to = Reply)]
        pub(crate) parent_id: Option<i64>,
        pub(crate) body: String,
    }

    #[derive(Debug, Clone, MercureEvent)]
    #[mercure(type = "reply_update", topic = "replies/{reply_id}")]
    #[trigger(self::Reply::body, crate::same_model_spelled_twice::Reply::INSERT)]
    pub(crate) struct ReplyUpdate {
        #[context(Reply::id)]
        pub(crate) reply_id: i64,
    }

    #[test]
    fn the_models_are_compared_as_types() {
        let triggers = (ReplyUpdate::descriptor().triggers)();
        assert_eq!(triggers.len(), 2);
        for trigger in &triggers {
            assert_eq!(trigger.model.table, "replies");
            assert!(trigger.contexts[0].links.is_empty());
        }
    }
}

mod user_methods_win {
    //! A repository trait of the user with methods named `find`, `insert` and `delete`: the
    //! generated ones (methods of `Model`) never hide them.
    use mercure_track::Tracked;

    #[derive(Debug, Clone, Tracked)]
    #[tracked(table = "posts")]
    pub(crate) struct Post {
        #[tracked(primary_key)]
        pub(crate) id: i64,
        pub(crate) title: String,
    }

    pub(crate) trait PostRepository {
        fn find(id: i64) -> Post;
        fn insert(&mut self) -> &'static str;
        fn delete(&mut self) -> &'static str;
    }

    impl PostRepository for Post {
        fn find(id: i64) -> Post {
            Post {
                id,
                title: "from the repository".into(),
            }
        }
        fn insert(&mut self) -> &'static str {
            "repository insert"
        }
        fn delete(&mut self) -> &'static str {
            "repository delete"
        }
    }

    #[test]
    fn the_users_trait_methods_are_called() {
        let mut post = Post::find(3);
        assert_eq!(post.title, "from the repository");
        assert_eq!(post.insert(), "repository insert");
        assert_eq!(post.delete(), "repository delete");
    }
}
