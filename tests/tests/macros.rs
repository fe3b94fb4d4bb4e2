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
    assert!(registry::validate().is_ok());
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
