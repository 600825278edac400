//! [`CapacityLimiter`]: Trio's capacity limiter, a semaphore that knows who holds each token.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::poll_fn;
use std::task::Poll;

use super::waiters::{Armed, Tickets, wait};
use crate::error::ConfigError;
use crate::sync::{Arc, Condvar, Mutex, lock};

/// Who holds a token of a [`CapacityLimiter`].
///
/// [`Borrower::current`] is the current tokio task, or the current thread outside any task
/// (Trio uses the current task); [`From`] a number or a string names a borrower explicitly,
/// for [`CapacityLimiter::acquire_on_behalf_of`].
///
/// ```
/// use concurry::Borrower;
/// assert_eq!(Borrower::from("job-7"), Borrower::from("job-7".to_string()));
/// assert_ne!(Borrower::from(7u64), Borrower::from("7"));
/// assert_eq!(Borrower::from("job-7").to_string(), "`job-7`");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Borrower(Who);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Who {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
    Id(u64),
    Name(Box<str>),
}

impl Borrower {
    /// The current tokio task, else the current thread.
    ///
    /// ```
    /// use concurry::Borrower;
    /// assert_eq!(Borrower::current(), Borrower::current()); // same thread
    /// ```
    pub fn current() -> Self {
        match tokio::task::try_id() {
            Some(id) => Borrower(Who::Task(id)),
            None => Borrower(Who::Thread(std::thread::current().id())),
        }
    }
}

impl From<u64> for Borrower {
    fn from(id: u64) -> Self {
        Borrower(Who::Id(id))
    }
}

impl From<&str> for Borrower {
    fn from(name: &str) -> Self {
        Borrower(Who::Name(name.into()))
    }
}

impl From<String> for Borrower {
    fn from(name: String) -> Self {
        Borrower(Who::Name(name.into()))
    }
}

impl fmt::Display for Borrower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Who::Task(id) => write!(f, "task {id}"),
            Who::Thread(id) => write!(f, "thread {id:?}"),
            Who::Id(id) => write!(f, "borrower {id}"),
            Who::Name(n) => write!(f, "`{n}`"),
        }
    }
}

impl fmt::Debug for Borrower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Borrower({self})")
    }
}

/// Why a [`CapacityLimiter`] refused an acquire or a release.
///
/// ```
/// use concurry::{CapacityError, CapacityLimiter};
/// let limiter = CapacityLimiter::new(2).unwrap();
/// let _held = limiter.try_acquire_on_behalf_of("a").unwrap();
/// let e = limiter.try_acquire_on_behalf_of("a").unwrap_err();
/// assert!(matches!(e, CapacityError::AlreadyBorrowing(_)));
/// assert_eq!(
///     e.to_string(),
///     "`a` already holds a token of this CapacityLimiter; a borrower holds at most one \
///      (release it first, or acquire on behalf of another borrower)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// The borrower already holds (or already waits for) a token.
    #[error(
        "{0} already holds a token of this CapacityLimiter; a borrower holds at most one \
         (release it first, or acquire on behalf of another borrower)"
    )]
    AlreadyBorrowing(Borrower),
    /// A release on behalf of a borrower that holds no token.
    #[error("{0} holds no token of this CapacityLimiter, so it has nothing to release")]
    NotBorrowing(Borrower),
    /// `try_acquire*`: every token is borrowed (or others wait first).
    #[error("every token of this CapacityLimiter is borrowed")]
    WouldBlock,
}

/// A semaphore that tracks its borrowers, after Trio's `CapacityLimiter`.
///
/// - [`total`](Self::total) tokens, changeable at run time with
///   [`set_total`](Self::set_total) (raising it admits waiters at once; lowering it lets
///   current holders finish and admits nobody until [`borrowed`](Self::borrowed) falls below),
///   [`borrowed`](Self::borrowed), [`available`](Self::available), [`waiting`](Self::waiting),
///   [`borrowers`](Self::borrowers).
/// - Each token is held by a [`Borrower`]: the current task or thread
///   ([`acquire`](Self::acquire)), or one named with
///   [`acquire_on_behalf_of`](Self::acquire_on_behalf_of). A borrower holds at most one token:
///   a second acquire is [`CapacityError::AlreadyBorrowing`], a release by a borrower holding
///   none is [`CapacityError::NotBorrowing`].
/// - Fair: waiters get tokens in arrival order, and a freed token goes straight to the oldest
///   waiter (a newcomer cannot overtake it).
/// - Async (`acquire*`), blocking (`acquire_blocking*`, which hands its tokio worker thread
///   over first when called on one) and non-blocking (`try_acquire*`). A dropped (cancelled)
///   async acquire gives up its place, or its token if it was just granted one.
/// - Every acquire returns a [`CapacityPermit`], which releases the token on drop.
///
/// Clones share the tokens.
///
/// ```
/// use concurry::CapacityLimiter;
///
/// # #[tokio::main] async fn main() {
/// let limiter = CapacityLimiter::new(2).unwrap();
/// let a = limiter.acquire().await.unwrap(); // borrower: this task
/// let b = limiter.acquire_on_behalf_of("job-1").await.unwrap();
/// assert_eq!((limiter.borrowed(), limiter.total(), limiter.available()), (2, 2, 0));
/// assert!(limiter.try_acquire_on_behalf_of("job-2").is_err());
///
/// limiter.set_total(3).unwrap();
/// let c = limiter.try_acquire_on_behalf_of("job-2").unwrap();
/// assert_eq!(c.borrower().to_string(), "`job-2`");
/// drop((a, b, c));
/// assert_eq!(limiter.borrowed(), 0);
/// # }
/// ```
#[derive(Clone)]
pub struct CapacityLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    cv: Condvar,
}

struct State {
    total: usize,
    borrowers: HashSet<Borrower>,
    tickets: Tickets,
    /// Ticket → the borrower it waits for.
    pending: HashMap<u64, Borrower>,
}

impl State {
    fn check_new(&self, b: &Borrower) -> Result<(), CapacityError> {
        if self.borrowers.contains(b) || self.pending.values().any(|p| p == b) {
            return Err(CapacityError::AlreadyBorrowing(b.clone()));
        }
        Ok(())
    }

    /// Takes a token at once if one is free and nobody waits before us.
    fn try_take(&mut self, b: &Borrower) -> bool {
        if self.tickets.is_empty() && self.borrowers.len() < self.total {
            self.borrowers.insert(b.clone());
            true
        } else {
            false
        }
    }

    /// Hands free tokens to the oldest waiters (the token is theirs from now on). True if
    /// anyone was granted.
    fn grant(&mut self) -> bool {
        let mut any = false;
        while self.borrowers.len() < self.total {
            let Some(id) = self.tickets.grant_one() else {
                break;
            };
            // The token is the borrower's from now on (its ticket keeps the borrower in
            // `pending` until the waiter collects the grant).
            if let Some(b) = self.pending.get(&id) {
                self.borrowers.insert(b.clone());
            }
            any = true;
        }
        any
    }
}

fn check_total(total: usize) -> Result<(), ConfigError> {
    if total == 0 {
        return Err(ConfigError::new(
            "total",
            "0",
            "a CapacityLimiter needs at least 1 token (a limiter of 0 would block every \
             acquire forever)",
        ));
    }
    Ok(())
}

impl CapacityLimiter {
    /// A limiter of `total` tokens.
    ///
    /// # Errors
    /// [`ConfigError`] if `total` is 0.
    ///
    /// ```
    /// use concurry::CapacityLimiter;
    /// assert_eq!(CapacityLimiter::new(10).unwrap().available(), 10);
    /// assert_eq!(
    ///     CapacityLimiter::new(0).unwrap_err().to_string(),
    ///     "invalid option `total` = 0: a CapacityLimiter needs at least 1 token (a limiter \
    ///      of 0 would block every acquire forever)"
    /// );
    /// ```
    pub fn new(total: usize) -> Result<Self, ConfigError> {
        check_total(total)?;
        Ok(CapacityLimiter {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    total,
                    borrowers: HashSet::new(),
                    tickets: Tickets::default(),
                    pending: HashMap::new(),
                }),
                cv: Condvar::new(),
            }),
        })
    }

    /// The number of tokens.
    ///
    /// ```
    /// assert_eq!(concurry::CapacityLimiter::new(4).unwrap().total(), 4);
    /// ```
    pub fn total(&self) -> usize {
        lock(&self.inner.state).total
    }

    /// Changes the number of tokens. Raising it grants waiters at once; lowering it below
    /// [`borrowed`](Self::borrowed) takes no token back, it only admits nobody until enough
    /// are released.
    ///
    /// # Errors
    /// [`ConfigError`] if `total` is 0.
    ///
    /// ```
    /// use concurry::CapacityLimiter;
    /// let limiter = CapacityLimiter::new(2).unwrap();
    /// let a = limiter.try_acquire_on_behalf_of(1u64).unwrap();
    /// let b = limiter.try_acquire_on_behalf_of(2u64).unwrap();
    /// limiter.set_total(1).unwrap();
    /// assert_eq!((limiter.borrowed(), limiter.available()), (2, 0));
    /// drop(a);
    /// assert!(limiter.try_acquire_on_behalf_of(3u64).is_err()); // still 1 of 1 borrowed
    /// drop(b);
    /// assert!(limiter.try_acquire_on_behalf_of(3u64).is_ok());
    /// assert!(limiter.set_total(0).is_err());
    /// ```
    pub fn set_total(&self, total: usize) -> Result<(), ConfigError> {
        check_total(total)?;
        let mut s = lock(&self.inner.state);
        s.total = total;
        if s.grant() {
            drop(s);
            self.inner.cv.notify_all();
        }
        Ok(())
    }

    /// Tokens held now.
    ///
    /// ```
    /// let limiter = concurry::CapacityLimiter::new(3).unwrap();
    /// let _p = limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.borrowed(), 1);
    /// ```
    pub fn borrowed(&self) -> usize {
        lock(&self.inner.state).borrowers.len()
    }

    /// Tokens free now: `total - borrowed`, or 0 while a lowered total is below `borrowed`.
    ///
    /// ```
    /// let limiter = concurry::CapacityLimiter::new(3).unwrap();
    /// let _p = limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.available(), 2);
    /// ```
    pub fn available(&self) -> usize {
        let s = lock(&self.inner.state);
        s.total.saturating_sub(s.borrowers.len())
    }

    /// Acquires waiting now.
    ///
    /// ```
    /// assert_eq!(concurry::CapacityLimiter::new(1).unwrap().waiting(), 0);
    /// ```
    pub fn waiting(&self) -> usize {
        lock(&self.inner.state).tickets.len()
    }

    /// Who holds a token now (in no particular order).
    ///
    /// ```
    /// use concurry::{Borrower, CapacityLimiter};
    /// let limiter = CapacityLimiter::new(3).unwrap();
    /// let _p = limiter.try_acquire_on_behalf_of("db").unwrap();
    /// assert_eq!(limiter.borrowers(), vec![Borrower::from("db")]);
    /// ```
    pub fn borrowers(&self) -> Vec<Borrower> {
        lock(&self.inner.state).borrowers.iter().cloned().collect()
    }

    fn permit(&self, borrower: Borrower) -> CapacityPermit {
        CapacityPermit {
            limiter: self.clone(),
            borrower: Some(borrower),
        }
    }

    /// Takes a token for the current task (or thread), waiting for one.
    ///
    /// # Errors
    /// [`CapacityError::AlreadyBorrowing`] if this task already holds one.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let limiter = concurry::CapacityLimiter::new(1).unwrap();
    /// let permit = limiter.acquire().await.unwrap();
    /// assert!(limiter.acquire().await.is_err()); // the same task, twice
    /// drop(permit);
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<CapacityPermit, CapacityError> {
        self.acquire_on_behalf_of(Borrower::current()).await
    }

    /// Takes a token for `borrower`, waiting for one (in arrival order).
    ///
    /// # Errors
    /// [`CapacityError::AlreadyBorrowing`] if `borrower` already holds or waits for one.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use concurry::CapacityLimiter;
    /// let limiter = CapacityLimiter::new(1).unwrap();
    /// let first = limiter.acquire_on_behalf_of("a").await.unwrap();
    /// let l2 = limiter.clone();
    /// let waiter = tokio::spawn(async move { l2.acquire_on_behalf_of("b").await.map(|p| p.forget()) });
    /// while limiter.waiting() == 0 { tokio::task::yield_now().await; }
    /// drop(first); // the token goes straight to "b"
    /// assert_eq!(waiter.await.unwrap().unwrap().to_string(), "`b`");
    /// limiter.release_on_behalf_of("b").unwrap();
    /// # }
    /// ```
    pub async fn acquire_on_behalf_of(
        &self,
        borrower: impl Into<Borrower>,
    ) -> Result<CapacityPermit, CapacityError> {
        let borrower = borrower.into();
        let id = {
            let mut s = lock(&self.inner.state);
            s.check_new(&borrower)?;
            if s.try_take(&borrower) {
                return Ok(self.permit(borrower));
            }
            let id = s.tickets.push(None);
            s.pending.insert(id, borrower.clone());
            id
        };
        let cleanup = Armed::new(|| self.inner.abandon(id));
        poll_fn(|cx| {
            let mut s = lock(&self.inner.state);
            if s.collect(id) {
                Poll::Ready(())
            } else {
                s.tickets.set_waker(id, cx.waker());
                Poll::Pending
            }
        })
        .await;
        cleanup.disarm();
        Ok(self.permit(borrower))
    }

    /// [`acquire`](Self::acquire) for plain threads: blocks until a token is free. On a
    /// tokio worker thread it hands the thread's other tasks over first
    /// ([`block_in_place`](tokio::task::block_in_place)).
    ///
    /// # Errors
    /// [`CapacityError::AlreadyBorrowing`] if this thread already holds one.
    ///
    /// ```
    /// let limiter = concurry::CapacityLimiter::new(1).unwrap();
    /// let permit = limiter.acquire_blocking().unwrap();
    /// let l2 = limiter.clone();
    /// let t = std::thread::spawn(move || l2.acquire_blocking().map(|_| ()));
    /// drop(permit);
    /// t.join().unwrap().unwrap();
    /// ```
    pub fn acquire_blocking(&self) -> Result<CapacityPermit, CapacityError> {
        self.acquire_blocking_on_behalf_of(Borrower::current())
    }

    /// [`acquire_on_behalf_of`](Self::acquire_on_behalf_of) for plain threads.
    ///
    /// # Errors
    /// [`CapacityError::AlreadyBorrowing`] if `borrower` already holds or waits for one.
    ///
    /// ```
    /// let limiter = concurry::CapacityLimiter::new(1).unwrap();
    /// let p = limiter.acquire_blocking_on_behalf_of(1u64).unwrap();
    /// assert_eq!(p.borrower(), &concurry::Borrower::from(1u64));
    /// ```
    pub fn acquire_blocking_on_behalf_of(
        &self,
        borrower: impl Into<Borrower>,
    ) -> Result<CapacityPermit, CapacityError> {
        let borrower = borrower.into();
        crate::runtime::blocking(|| {
            let mut s = lock(&self.inner.state);
            s.check_new(&borrower)?;
            if s.try_take(&borrower) {
                return Ok(());
            }
            let id = s.tickets.push(None);
            s.pending.insert(id, borrower.clone());
            while !s.collect(id) {
                s = wait(&self.inner.cv, s);
            }
            Ok(())
        })?;
        Ok(self.permit(borrower))
    }

    /// Takes a token for the current task (or thread) if one is free now.
    ///
    /// # Errors
    /// [`CapacityError::WouldBlock`] if none is free (or others wait first),
    /// [`CapacityError::AlreadyBorrowing`] if this task or thread already holds one.
    ///
    /// ```
    /// use concurry::{CapacityError, CapacityLimiter};
    /// let limiter = CapacityLimiter::new(1).unwrap();
    /// let _p = limiter.try_acquire_on_behalf_of("other").unwrap();
    /// assert_eq!(limiter.try_acquire().unwrap_err(), CapacityError::WouldBlock);
    /// ```
    pub fn try_acquire(&self) -> Result<CapacityPermit, CapacityError> {
        self.try_acquire_on_behalf_of(Borrower::current())
    }

    /// Takes a token for `borrower` if one is free now.
    ///
    /// # Errors
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// ```
    /// let limiter = concurry::CapacityLimiter::new(1).unwrap();
    /// assert!(limiter.try_acquire_on_behalf_of(5u64).is_ok());
    /// ```
    pub fn try_acquire_on_behalf_of(
        &self,
        borrower: impl Into<Borrower>,
    ) -> Result<CapacityPermit, CapacityError> {
        let borrower = borrower.into();
        let mut s = lock(&self.inner.state);
        s.check_new(&borrower)?;
        if s.try_take(&borrower) {
            drop(s);
            Ok(self.permit(borrower))
        } else {
            Err(CapacityError::WouldBlock)
        }
    }

    /// Releases the token `borrower` holds; for tokens kept past their permit with
    /// [`CapacityPermit::forget`]. The token goes to the oldest waiter, if any.
    ///
    /// # Errors
    /// [`CapacityError::NotBorrowing`] if `borrower` holds no token.
    ///
    /// ```
    /// use concurry::{CapacityError, CapacityLimiter};
    /// let limiter = CapacityLimiter::new(1).unwrap();
    /// let who = limiter.try_acquire_on_behalf_of("conn").unwrap().forget();
    /// assert_eq!(limiter.borrowed(), 1);
    /// limiter.release_on_behalf_of(who).unwrap();
    /// assert!(matches!(
    ///     limiter.release_on_behalf_of("conn"),
    ///     Err(CapacityError::NotBorrowing(_))
    /// ));
    /// ```
    pub fn release_on_behalf_of(&self, borrower: impl Into<Borrower>) -> Result<(), CapacityError> {
        let borrower = borrower.into();
        let mut s = lock(&self.inner.state);
        if !s.borrowers.remove(&borrower) {
            return Err(CapacityError::NotBorrowing(borrower));
        }
        if s.grant() {
            drop(s);
            self.inner.cv.notify_all();
        }
        Ok(())
    }
}

impl State {
    /// The waiter of ticket `id` collects its grant (its borrower already holds the token).
    fn collect(&mut self, id: u64) -> bool {
        if self.tickets.take_grant(id) {
            self.pending.remove(&id);
            true
        } else {
            false
        }
    }
}

impl Inner {
    /// An async acquire dropped before it finished: leave the line, or pass on a token granted
    /// in the meantime.
    fn abandon(&self, id: u64) {
        let mut s = lock(&self.state);
        let borrower = s.pending.remove(&id);
        // Granted meanwhile: its borrower holds a token nobody will use; pass it on.
        let woken = if s.tickets.cancel(id) {
            if let Some(b) = borrower {
                s.borrowers.remove(&b);
            }
            s.grant()
        } else {
            false
        };
        if woken {
            drop(s);
            self.cv.notify_all();
        }
    }
}

impl fmt::Debug for CapacityLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.inner.state);
        f.debug_struct("CapacityLimiter")
            .field("total", &s.total)
            .field("borrowed", &s.borrowers.len())
            .field("waiting", &s.tickets.len())
            .finish()
    }
}

/// A token of a [`CapacityLimiter`], held by a [`Borrower`]; released on drop.
///
/// ```
/// let limiter = concurry::CapacityLimiter::new(1).unwrap();
/// {
///     let _permit = limiter.try_acquire().unwrap();
///     assert_eq!(limiter.available(), 0);
/// }
/// assert_eq!(limiter.available(), 1);
/// ```
#[must_use = "the token is released when the permit is dropped"]
pub struct CapacityPermit {
    limiter: CapacityLimiter,
    borrower: Option<Borrower>,
}

impl CapacityPermit {
    /// Who holds the token.
    ///
    /// ```
    /// let limiter = concurry::CapacityLimiter::new(1).unwrap();
    /// let p = limiter.try_acquire_on_behalf_of("x").unwrap();
    /// assert_eq!(p.borrower().to_string(), "`x`");
    /// ```
    pub fn borrower(&self) -> &Borrower {
        self.borrower
            .as_ref()
            .expect("the borrower is taken only on drop or forget")
    }

    /// Keeps the token held past this permit; release it later with
    /// [`CapacityLimiter::release_on_behalf_of`] (Trio's acquire/release pairs).
    ///
    /// ```
    /// let limiter = concurry::CapacityLimiter::new(1).unwrap();
    /// let who = limiter.try_acquire_on_behalf_of(9u64).unwrap().forget();
    /// assert_eq!(limiter.borrowed(), 1);
    /// limiter.release_on_behalf_of(who).unwrap();
    /// assert_eq!(limiter.borrowed(), 0);
    /// ```
    pub fn forget(mut self) -> Borrower {
        self.borrower
            .take()
            .expect("the borrower is taken only on drop or forget")
    }
}

impl Drop for CapacityPermit {
    fn drop(&mut self) {
        if let Some(b) = self.borrower.take() {
            // Held by this permit, so the release cannot fail (unless someone released it on
            // the permit's behalf: then there is nothing left to do).
            let _ = self.limiter.release_on_behalf_of(b);
        }
    }
}

impl fmt::Debug for CapacityPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityPermit")
            .field("borrower", &self.borrower)
            .finish()
    }
}
