//! Compile-time reachability through `belongs_to` links.
//!
//! Every `#[tracked(belongs_to = Parent)]` field adds a link to a type-level list of its
//! model's parents. An event whose trigger is on `ColoringVersion` and whose context reads
//! `Order::id` compiles only if the compiler finds a path from `ColoringVersion` to `Order`
//! through these links, and it infers that path from the declared links: ColoringVersion →
//! Image → LineItem → Order. The same inferred path type then yields, at run time, the list of
//! joins (each a [`Link`]) the session uses to resolve the context, so the check and the query
//! can never disagree.
//!
//! # Why an inferred path and not a declared one
//!
//! Declaring the chain on every context field (`via(Image, LineItem)`) would repeat, for every
//! event and every trigger model, what the models already say. Inference needs no extra
//! annotation and works on stable Rust: the parent list is a type-level list, and the compiler
//! discards every branch of the search that cannot reach the target (the technique behind
//! `frunk`'s `Plucker`). Its limits, which the compiler reports as errors:
//!
//! - the search goes at most 8 links deep;
//! - when two different chains lead to the target (a diamond, or a cycle of `belongs_to`
//!   links that also leads there), the path is ambiguous and the compiler says "type
//!   annotations needed" on the trigger. Name the first link of the chain to take with
//!   `#[context(Order::id, via(Picture::line_item_id))]` (a [`ForeignKeyColumn`] of the
//!   trigger's model; the rest is inferred from its parent), and declare `belongs_to` for
//!   ownership links (child → parent) only: a reference that points sideways, such as an
//!   image's selected coloring, stays a plain column.
//!
//! [`ForeignKeyColumn`]: crate::model::ForeignKeyColumn
//!
//! A model reaches itself without any search, even when it belongs to itself (a tree): a
//! `belongs_to` link from a model to itself (`belongs_to = Self`, or the model's own name) is
//! not followed by the search, so a trigger and a context on the same model never need a
//! join, however the paths spell the model. Name such a link with `via(...)` to follow it.
//!
//! The types of this module that carry the search (lists, indexes, depths) are not public
//! API; only [`Link`] is.

use std::marker::PhantomData;

use crate::model::{ColumnInfo, Model, ModelInfo};

/// One `belongs_to` link: column `FIELD` of `Child` holds the primary key of `Parent`.
#[doc(hidden)]
pub struct ForeignKey<Child, Parent, const FIELD: usize>(PhantomData<fn() -> (Child, Parent)>);

/// The end of a type-level list of parents.
#[doc(hidden)]
pub struct Nil;

/// A type-level list of parents: `Head` followed by `Tail`.
#[doc(hidden)]
pub struct Cons<Head, Tail>(PhantomData<fn() -> (Head, Tail)>);

/// Path step: the target is the model itself.
#[doc(hidden)]
pub struct Here;
/// Path step: go to one of the parents, chosen by `I` (a `Head` or `Next` index).
#[doc(hidden)]
pub struct Up<I>(PhantomData<I>);
/// Parent index: the first parent of the list, followed by the rest of the path `R`.
#[doc(hidden)]
pub struct Head<R>(PhantomData<R>);
/// Parent index: skip the first parent of the list.
#[doc(hidden)]
pub struct Next<I>(PhantomData<I>);

/// Type-level depth: zero links left.
#[doc(hidden)]
pub struct Z;
/// Type-level depth: one more link allowed than `D`.
#[doc(hidden)]
pub struct S<D>(PhantomData<D>);

/// The deepest chain of `belongs_to` links the search follows (8 links).
#[doc(hidden)]
pub type MaxDepth = S<S<S<S<S<S<S<S<Z>>>>>>>>;

/// One join of a context path: `from.fk_column = to.<primary key>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Link {
    /// The child model, holding the foreign key.
    pub from: ModelInfo,
    /// The foreign key column of `from`.
    pub foreign_key: &'static ColumnInfo,
    /// The parent model, whose primary key the foreign key holds.
    pub to: ModelInfo,
}

/// `Self` reaches model `T` through `belongs_to` links along path `P`, within depth `D`.
///
/// `O` is the model the search started from; it only serves the error message.
#[diagnostic::on_unimplemented(
    message = "`{O}` cannot reach `{T}` through `belongs_to` links",
    label = "no chain of `#[tracked(belongs_to = ...)]` links leads from `{O}` to `{T}`",
    note = "declare the foreign keys on the way with `#[tracked(belongs_to = Parent)]`, or use a context column of `{O}` itself"
)]
#[doc(hidden)]
pub trait Reaches<T, P, D, O> {
    /// Appends the joins of the path to `out`, from `Self` towards `T`.
    fn links(out: &mut Vec<Link>);
}

impl<T: Model, D, O> Reaches<T, Here, D, O> for T {
    fn links(_: &mut Vec<Link>) {}
}

impl<M: Model, T, I, D, O> Reaches<T, Up<I>, S<D>, O> for M
where
    M::Parents: ParentsReach<T, I, D, O>,
{
    fn links(out: &mut Vec<Link>) {
        <M::Parents as ParentsReach<T, I, D, O>>::links(out)
    }
}

/// One of the parents in the list `Self` reaches `T` along index `I`, within depth `D`.
#[diagnostic::on_unimplemented(
    message = "`{O}` cannot reach `{T}` through `belongs_to` links",
    label = "no chain of `#[tracked(belongs_to = ...)]` links leads from `{O}` to `{T}`",
    note = "declare the foreign keys on the way with `#[tracked(belongs_to = Parent)]`, or use a context column of `{O}` itself"
)]
#[doc(hidden)]
pub trait ParentsReach<T, I, D, O> {
    /// Appends the joins of the path to `out`.
    fn links(out: &mut Vec<Link>);
}

impl<C, P, const F: usize, Tail, T, R, D, O> ParentsReach<T, Head<R>, D, O>
    for Cons<ForeignKey<C, P, F>, Tail>
where
    C: Model,
    P: Model + Reaches<T, R, D, O>,
{
    fn links(out: &mut Vec<Link>) {
        out.push(Link {
            from: C::info(),
            foreign_key: &C::COLUMNS[F],
            to: P::info(),
        });
        P::links(out)
    }
}

impl<H, Tail, T, I, D, O> ParentsReach<T, Next<I>, D, O> for Cons<H, Tail>
where
    Tail: ParentsReach<T, I, D, O>,
{
    fn links(out: &mut Vec<Link>) {
        Tail::links(out)
    }
}

/// The joins from `From` to `To`, the path inferred by the compiler. Used by generated code.
#[doc(hidden)]
pub fn path<From, To, P>() -> Vec<Link>
where
    From: Reaches<To, P, MaxDepth, From>,
{
    let mut links = Vec::new();
    From::links(&mut links);
    links
}
