//! Racing two futures without an executor-specific crate: the first to complete wins, the other is dropped.
//! `a` is polled first on every wake, so a ready read is never starved by a due timer.

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

pub enum Either<A, B> {
    First(A),
    Second(B),
}

pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::First(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Second(v));
        }
        Poll::Pending
    })
    .await
}
