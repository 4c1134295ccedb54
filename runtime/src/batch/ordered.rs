//! Running many futures in order: sequentially in place, or at most so many at a time with
//! their outputs in input order; what batches of items and concurrent batch flows share.

use std::future::Future;

use futures_util::{FutureExt, StreamExt, stream};

/// Runs `task(index)` for every index below `count`, at most `limit` at a time, starting them in
/// index order; the outputs come back in index order whatever order they finish in, and
/// `done(index)` is called as each finishes. The first error returns at once, dropping
/// (cancelling) the tasks still in flight. With a `limit` of 1 the tasks run one after another
/// in this future, with no task of their own.
pub(super) async fn run_ordered<T, E, F, Fut>(
    count: usize,
    limit: usize,
    mut task: F,
    mut done: impl FnMut(usize),
) -> Result<Vec<T>, E>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    if limit == 1 {
        let mut outputs = Vec::with_capacity(count);
        for index in 0..count {
            outputs.push(task(index).await?);
            done(index);
        }
        return Ok(outputs);
    }
    let mut outputs: Vec<Option<T>> = std::iter::repeat_with(|| None).take(count).collect();
    let mut running = stream::iter(0..count)
        .map(|index| tagged(index, task(index)))
        .buffer_unordered(limit);
    while let Some((index, output)) = running.next().await {
        outputs[index] = Some(output?);
        done(index);
    }
    Ok(outputs.into_iter().flatten().collect())
}

/// `future`, its output tagged with `index`. Through `map`, not an `async` block: a block keeps
/// the future twice (as its capture and as the future it awaits), and every item in flight
/// would carry both.
fn tagged<Fut: Future>(index: usize, future: Fut) -> impl Future<Output = (usize, Fut::Output)> {
    future.map(move |output| (index, output))
}

#[cfg(test)]
mod tests {
    use super::tagged;

    #[test]
    fn a_tagged_item_future_holds_its_future_once() {
        let buffer = [7_u8; 512];
        let item = async move {
            std::future::ready(()).await;
            buffer.len()
        };
        let size = std::mem::size_of_val(&item);
        assert!(size >= 512);
        let tagged = tagged(3, item);
        assert!(
            std::mem::size_of_val(&tagged) <= size + 16,
            "{} bytes for a {size}-byte future",
            std::mem::size_of_val(&tagged)
        );
        assert_eq!(
            crate::run::block_on("test", "test", async { Ok(tagged.await) }).unwrap(),
            (3, 512)
        );
    }
}
