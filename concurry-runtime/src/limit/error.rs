//! [`LimitError`]: why a limit could not be acquired, built or updated.

/// Why an acquisition failed (or a limit set could not be built).
///
/// Each message names the key and says what to do.
///
/// ```
/// use concurry::{LimitError, LimitSet, RateLimit};
///
/// let set = LimitSet::new([RateLimit::per_minute("tokens", 1000)]).unwrap();
/// let e = set.try_acquire(&[("tokens", 5000)]).unwrap_err();
/// assert!(matches!(e, LimitError::ExceedsCapacity { requested: 5000, capacity: 1000, .. }));
/// assert!(e.to_string().contains("`tokens`"));
///
/// // It crosses a wire as it is (a served worker's `limits()` gets its host's errors typed).
/// let bytes = concurry::wire::encode(&e, "limit error").unwrap();
/// assert_eq!(concurry::wire::decode::<LimitError>(&bytes, "limit error").unwrap(), e);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum LimitError {
    /// The request names a key the set has no limit for.
    #[error("unknown limit key `{key}`; the set has: {known}")]
    UnknownKey {
        /// The key asked for.
        key: String,
        /// The keys the set has, comma-separated (or "no limits").
        known: String,
    },
    /// More was requested than the limit's capacity: it could never be granted.
    #[error(
        "requested {requested} of `{key}` but its capacity is {capacity}; \
         split the request or raise the limit"
    )]
    ExceedsCapacity {
        /// The limit's key.
        key: String,
        /// The amount requested.
        requested: u64,
        /// The limit's capacity.
        capacity: u64,
    },
    /// The wait ran past its timeout.
    #[error("timed out waiting for limits {keys}; retry later or use a longer timeout")]
    Timeout {
        /// The keys requested, comma-separated.
        keys: String,
    },
    /// `try_acquire` found the limits busy.
    #[error("limits {keys} are not available now; wait with `acquire` or retry later")]
    WouldBlock {
        /// The keys requested, comma-separated.
        keys: String,
    },
    /// A limit is invalid (zero capacity or window, duplicate key, ...).
    #[error("invalid limit `{key}`: {reason}")]
    Invalid {
        /// The limit's key.
        key: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An empty request (`acquire(&[])`) on a set with rate limits that need an amount:
    /// it would charge none of them. Call and resource limits need none (one unit each is
    /// taken for every request).
    ///
    /// ```
    /// use concurry::{LimitError, LimitSet, RateLimit};
    ///
    /// let set = LimitSet::new([RateLimit::per_minute("tokens", 1000)]).unwrap();
    /// let e = set.acquire(&[]).unwrap_err();
    /// assert!(matches!(e, LimitError::MissingAmount { ref keys } if keys == &["tokens"]));
    /// assert!(e.to_string().contains(r#"pass ("tokens", n)"#));
    /// ```
    #[error("{}", missing_amount(keys))]
    MissingAmount {
        /// The rate limits' keys, in the set's order.
        keys: Vec<String>,
    },
    /// `update` named a key this acquisition does not hold, or a resource limit (whose units
    /// are returned on drop, not corrected).
    #[error("cannot update `{key}`: {reason}")]
    NotUpdatable {
        /// The key given to `update`.
        key: String,
        /// Why.
        reason: String,
    },
}

fn missing_amount(keys: &[String]) -> String {
    let names: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    let pairs: Vec<String> = keys.iter().map(|k| format!("(\"{k}\", n)")).collect();
    match keys {
        [_] => format!(
            "acquire(&[]) names no amount for rate limit {}; pass {}",
            names[0], pairs[0]
        ),
        _ => format!(
            "acquire(&[]) names no amount for rate limits {}; pass {} (or only the keys \
             this request uses)",
            names.join(", "),
            pairs.join(", ")
        ),
    }
}
