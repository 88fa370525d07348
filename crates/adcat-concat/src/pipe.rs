//! A two-stage pipeline: one thread reads and transforms blocks while the calling
//! thread encodes and writes the previous one.
//!
//! Reading (decode, reindex, cast) and writing (encode, compress) of a block are
//! independent, so they overlap; a bounded channel keeps at most `DEPTH` finished
//! blocks waiting, which is what the memory budget accounts for.

use crate::Result;
use std::sync::mpsc;

/// Blocks waiting between the stages (besides the one each stage holds).
const DEPTH: usize = 1;

/// Run `produce` on a scoped helper thread; every item it hands to its `send` callback
/// is passed, in order, to `consume` on the calling thread.
///
/// `send` returns `false` once the consumer has stopped (after an error), and the
/// producer should then return. The first error of either stage is returned; a consumer
/// error wins, since the producer only stops because of it.
pub(crate) fn pipeline<T: Send>(
    produce: impl FnOnce(&mut dyn FnMut(T) -> bool) -> Result<()> + Send,
    mut consume: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<T>(DEPTH);
        let producer = scope.spawn(move || {
            let mut send = |item: T| tx.send(item).is_ok();
            produce(&mut send)
        });
        let mut consumed = Ok(());
        for item in rx.iter() {
            if let Err(e) = consume(item) {
                consumed = Err(e);
                break;
            }
        }
        // Dropping the receiver makes the producer's next `send` fail, so it stops.
        drop(rx);
        let produced = producer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        consumed.and(produced)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConcatError;

    #[test]
    fn items_arrive_in_order() {
        let mut got = vec![];
        pipeline(
            |send| {
                for i in 0..100 {
                    if !send(i) {
                        break;
                    }
                }
                Ok(())
            },
            |i| {
                got.push(i);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn consumer_error_stops_the_producer() {
        let mut sent = 0;
        let r = pipeline(
            |send| {
                for i in 0..1_000_000 {
                    sent = i;
                    if !send(i) {
                        return Ok(());
                    }
                }
                Ok(())
            },
            |i| if i == 3 { Err(ConcatError::Options("stop".into())) } else { Ok(()) },
        );
        assert!(matches!(r, Err(ConcatError::Options(m)) if m == "stop"));
        assert!(sent < 10, "producer ran on to {sent}");
    }

    #[test]
    fn producer_error_is_returned() {
        let r = pipeline(
            |send| {
                send(1);
                Err(ConcatError::Options("read failed".into()))
            },
            |_: i32| Ok(()),
        );
        assert!(matches!(r, Err(ConcatError::Options(m)) if m == "read failed"));
    }
}
