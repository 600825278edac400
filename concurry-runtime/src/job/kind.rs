//! The four kinds of method call (a sync method, a sync method taking `&self` of a `Sync`
//! worker, an `async fn` taking `&mut self`, one taking `&self`) as one trait, [`Method`], so
//! a single submission path serves them all: the kind decides only which [`Job`] a call
//! becomes.

use std::borrow::Borrow;

use super::cell::{self, CallCell, CallLimits, MethodFuture};
use super::{Job, JobRef};
use crate::error::Error;
use crate::future::Promise;
use crate::sync::DynArc;

/// A method taking its arguments as `A`, of one of the four kinds ([`Blocking`],
/// [`SharedBlocking`], [`Exclusive`], [`Shared`]): what one submission path submits.
pub trait Method<W, A>: Send + Sync + Sized + 'static {
    /// The method's value.
    type Output: Send + 'static;
    /// The method's own error.
    type Error: Send + 'static;

    /// One call of `method` with `args` (the method held by value, or shared by the
    /// attempts of a retried call): the job a worker runs, and its promise.
    #[doc(hidden)]
    fn call<P>(method: P, args: A, limits: Limits) -> Bound<W, Self::Output, Self::Error>
    where
        P: Borrow<Self> + Send + 'static;
}

/// The limits a call takes on its worker, if the pool has any, and what reports the call
/// when it resolves (feature `metrics`; nothing for an attempt of a call reported as a whole).
#[doc(hidden)]
pub struct Limits(
    pub(crate) Option<Box<CallLimits>>,
    pub(crate) crate::report::CallTimer,
);

impl Default for Limits {
    fn default() -> Self {
        Limits(None, crate::report::CallTimer::none())
    }
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Limits").field(&self.0.is_some()).finish()
    }
}

/// A call ready to go: the job for a worker, and the promise it resolves.
#[doc(hidden)]
pub struct Bound<W, T, E> {
    pub(crate) job: Job<W>,
    pub(crate) promise: Promise<T, E>,
}

impl<W, T, E> std::fmt::Debug for Bound<W, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bound")
    }
}

impl<W, T, E> Bound<W, T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    fn new<F>(cell: &DynArc<CallCell<T, E, F>>, job: Job<W>) -> Self
    where
        F: Send + 'static,
    {
        Bound {
            job,
            promise: Promise::from_cell(cell.clone()),
        }
    }
}

/// A sync method: runs to completion with `&mut W`.
#[derive(Debug, Clone, Copy)]
pub struct Blocking<F>(F);

/// A sync method taking `&self` of a `Sync` worker: in async mode it runs on the blocking
/// pool while its worker goes on serving its `async fn` methods taking `&self`.
#[derive(Debug, Clone, Copy)]
pub struct SharedBlocking<F>(F);

/// An `async fn` taking `&mut self`: runs exclusively on its worker.
#[derive(Debug, Clone, Copy)]
pub struct Exclusive<F>(F);

/// An `async fn` taking `&self`: in async mode it may run concurrently with its worker's
/// other shared calls.
#[derive(Debug, Clone, Copy)]
pub struct Shared<F>(F);

/// `f` as a sync method (the bound pins the closure's signature).
#[inline]
pub fn blocking<W, A, T, E, F>(f: F) -> Blocking<F>
where
    F: Fn(&mut W, A) -> Result<T, Error<E>>,
{
    Blocking(f)
}

/// `f` as a sync method taking `&self` (of a `Sync` worker).
#[inline]
pub fn shared_blocking<W, A, T, E, F>(f: F) -> SharedBlocking<F>
where
    W: Sync,
    F: Fn(&W, A) -> Result<T, Error<E>>,
{
    SharedBlocking(f)
}

/// `f` as an `async fn` taking `&mut self`.
#[inline]
pub fn exclusive<W, A, T, E, F>(f: F) -> Exclusive<F>
where
    F: for<'a> Fn(&'a mut W, A) -> MethodFuture<'a, T, E>,
{
    Exclusive(f)
}

/// `f` as an `async fn` taking `&self`.
#[inline]
pub fn shared<W, A, T, E, F>(f: F) -> Shared<F>
where
    F: for<'a> Fn(&'a W, A) -> MethodFuture<'a, T, E>,
{
    Shared(f)
}

impl<W, A, T, E, F> Method<W, A> for Blocking<F>
where
    W: 'static,
    A: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    F: Fn(&mut W, A) -> Result<T, Error<E>> + Send + Sync + 'static,
{
    type Output = T;
    type Error = E;

    #[inline]
    fn call<P>(method: P, args: A, limits: Limits) -> Bound<W, T, E>
    where
        P: Borrow<Self> + Send + 'static,
    {
        let cell = cell::new(move |w: &mut W| (method.borrow().0)(w, args), limits);
        Bound::new(&cell, Job::Blocking(JobRef::new(cell.clone())))
    }
}

impl<W, A, T, E, F> Method<W, A> for SharedBlocking<F>
where
    W: Send + Sync + 'static,
    A: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    F: Fn(&W, A) -> Result<T, Error<E>> + Send + Sync + 'static,
{
    type Output = T;
    type Error = E;

    #[inline]
    fn call<P>(method: P, args: A, limits: Limits) -> Bound<W, T, E>
    where
        P: Borrow<Self> + Send + 'static,
    {
        let cell = cell::new(move |w: &W| (method.borrow().0)(w, args), limits);
        Bound::new(&cell, Job::SharedBlocking(JobRef::new(cell.clone())))
    }
}

impl<W, A, T, E, F> Method<W, A> for Exclusive<F>
where
    W: 'static,
    A: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    F: for<'a> Fn(&'a mut W, A) -> MethodFuture<'a, T, E> + Send + Sync + 'static,
{
    type Output = T;
    type Error = E;

    #[inline]
    fn call<P>(method: P, args: A, limits: Limits) -> Bound<W, T, E>
    where
        P: Borrow<Self> + Send + 'static,
    {
        let run = on_mut(move |w: &mut W| (method.borrow().0)(w, args));
        let cell = cell::new(run, limits);
        Bound::new(&cell, Job::Exclusive(JobRef::new(cell.clone())))
    }
}

impl<W, A, T, E, F> Method<W, A> for Shared<F>
where
    W: 'static,
    A: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    F: for<'a> Fn(&'a W, A) -> MethodFuture<'a, T, E> + Send + Sync + 'static,
{
    type Output = T;
    type Error = E;

    #[inline]
    fn call<P>(method: P, args: A, limits: Limits) -> Bound<W, T, E>
    where
        P: Borrow<Self> + Send + 'static,
    {
        let run = on_ref(move |w: &W| (method.borrow().0)(w, args));
        let cell = cell::new(run, limits);
        Bound::new(&cell, Job::Shared(JobRef::new(cell.clone())))
    }
}

/// Pins a closure's signature: its future borrows the instance it is given.
#[inline]
fn on_mut<W, T, E, F>(f: F) -> F
where
    F: for<'a> FnOnce(&'a mut W) -> MethodFuture<'a, T, E>,
{
    f
}

/// As [`on_mut`], sharing the instance.
#[inline]
fn on_ref<W, T, E, F>(f: F) -> F
where
    F: for<'a> FnOnce(&'a W) -> MethodFuture<'a, T, E>,
{
    f
}
