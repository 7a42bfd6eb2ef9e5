//! Nearest-rank percentiles, the one definition every report of the workspace uses (tick
//! times, delays, benchmark medians, region statistics), so that a p99 means the same wherever
//! it is printed. Measurement only: nothing in a tick uses it.

/// The 1-based nearest rank of the percentile `q` among `n` samples: the smallest `k` with
/// `k / n >= q`.
///
/// `ceil(q * n)` alone is off by one whenever the product rounds up past an integer: with
/// `q = 0.07` and `n = 100`, `q * n` is `7.000000000000001`. Comparing `k / n` with `q`, both as
/// floats, puts a percentile written as a decimal exactly on the rank that decimal names.
fn rank(n: usize, q: f64) -> usize {
    let size = n as f64;
    let mut k = ((q * size).ceil() as usize).clamp(1, n);
    while k > 1 && (k - 1) as f64 / size >= q {
        k -= 1;
    }
    while k < n && (k as f64 / size) < q {
        k += 1;
    }
    k
}

/// The nearest-rank percentile `q` (a share in `[0, 1]`; 0.99 for p99) of `sorted`, which is in
/// ascending order: the smallest sample with at least that share of all samples at or below it.
/// `q` at or below `1 / n` gives the minimum, 1 the maximum; out-of-range shares are clamped.
/// `None` when there are no samples.
///
/// # Panics
/// When `q` is NaN: a percentile nobody can name is a bug in the caller.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    assert!(!q.is_nan(), "a percentile share is a number in [0, 1]");
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[rank(sorted.len(), q.clamp(0.0, 1.0)) - 1])
}

/// The nearest-rank percentiles `qs` of `samples`, in any order (sorted here by total order, NaN
/// last), e.g. `percentiles(&ms, [0.5, 0.99, 1.0])` for p50, p99 and the maximum. `None` when
/// there are no samples.
///
/// # Panics
/// When a share is NaN (see [`nearest_rank`]).
pub fn percentiles<const N: usize>(samples: &[f64], qs: [f64; N]) -> Option<[f64; N]> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut out = [0.0; N];
    for (value, q) in out.iter_mut().zip(qs) {
        *value = nearest_rank(&sorted, q)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn percentiles_are_the_nearest_rank() {
        let hundred: Vec<u32> = (1..=100).collect();
        let at = |q| nearest_rank(&hundred, q).unwrap();
        assert_eq!(
            [at(0.0), at(0.01), at(0.5), at(0.99), at(1.0)],
            [1, 1, 50, 99, 100]
        );
        assert_eq!(at(0.505), 51, "between ranks: the next one up");
        let three = [10, 20, 30];
        let at = |q| nearest_rank(&three, q).unwrap();
        assert_eq!([at(0.33), at(0.34), at(0.5), at(0.99)], [10, 20, 20, 30]);
        assert_eq!(nearest_rank(&[7], 0.99), Some(7));
    }

    #[test]
    fn a_decimal_share_lands_on_the_rank_it_names() {
        let hundred: Vec<u32> = (1..=100).collect();
        assert!((0.07 * 100.0_f64).ceil() > 7.0, "the product rounds up");
        assert_eq!(nearest_rank(&hundred, 0.07), Some(7));
        let thousand: Vec<u32> = (1..=1000).collect();
        for k in 1..=1000 {
            let q = f64::from(k) / 1000.0;
            assert_eq!(nearest_rank(&thousand, q), Some(k), "q = {q}");
        }
    }

    #[test]
    fn no_samples_no_percentile_and_shares_out_of_range_are_clamped() {
        assert_eq!(nearest_rank::<u32>(&[], 0.5), None);
        assert_eq!(percentiles(&[], [0.5, 0.99]), None);
        assert_eq!(nearest_rank(&[1, 2], -3.0), Some(1));
        assert_eq!(nearest_rank(&[1, 2], 7.0), Some(2));
    }

    #[test]
    #[should_panic(expected = "a percentile share is a number in [0, 1]")]
    fn a_nan_share_is_refused() {
        nearest_rank(&[1, 2], f64::NAN);
    }

    #[test]
    fn unsorted_samples_are_sorted_first_and_any_copy_type_works() {
        let samples = [3.0, f64::NAN, 1.0, 2.0, 2.0];
        let [p20, p50, p80] = percentiles(&samples, [0.2, 0.5, 0.8]).unwrap();
        assert_eq!((p20, p50, p80), (1.0, 2.0, 3.0));
        assert!(
            percentiles(&samples, [1.0]).unwrap()[0].is_nan(),
            "NaN sorts last"
        );
        let ms = Duration::from_millis;
        assert_eq!(nearest_rank(&[ms(1), ms(4), ms(9)], 0.5), Some(ms(4)));
    }
}
