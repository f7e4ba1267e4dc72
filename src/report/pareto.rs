//! The Pareto frontier of (cost, loss) points: the levels no other level beats on both.
//! Pure geometry on numbers; it must not know about levels, results or drawing.

/// Which way the x quantity is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Less is better (memory, bytes).
    Lower,
    /// More is better (tokens/s).
    Higher,
}

/// For each point (x, loss), whether it is on the frontier: no other point is at least as
/// good on both axes and strictly better on one. Loss is always lower-is-better. Points with
/// a non-finite coordinate are never on the frontier and dominate nothing.
pub fn frontier(points: &[(f64, f64)], x: Better) -> Vec<bool> {
    let good = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let x_ge = |a: f64, b: f64| match x {
        Better::Lower => a <= b,
        Better::Higher => a >= b,
    };
    points
        .iter()
        .map(|p| {
            good(p)
                && !points
                    .iter()
                    .any(|q| good(q) && x_ge(q.0, p.0) && q.1 <= p.1 && (q.0 != p.0 || q.1 != p.1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_levels_memory_frontier() {
        // (peak RSS MB, KLD) of the committed example: f16 456/0, q8_0 257/0.00495,
        // q4_k_m 232/0.04996, q2_k 154/1.22, plus a made-up level that is bigger AND worse
        // than q8_0.
        let p = [
            (456.3, 0.0),
            (257.1, 0.00495),
            (232.3, 0.04996),
            (153.6, 1.22),
            (300.0, 0.06),
        ];
        assert_eq!(
            frontier(&p, Better::Lower),
            vec![true, true, true, true, false]
        );
    }

    #[test]
    fn example_levels_speed_frontier() {
        // (decode t/s, KLD): f16 34.9/0, q8_0 64.2/0.00495, q4_k_m 25.4/0.04996,
        // q2_k 77.4/1.22. q4_k_m is slower than f16 and worse: dominated.
        let p = [(34.9, 0.0), (64.2, 0.00495), (25.4, 0.04996), (77.4, 1.22)];
        assert_eq!(frontier(&p, Better::Higher), vec![true, true, false, true]);
    }

    #[test]
    fn ties_and_missing_values() {
        // Two identical points do not dominate each other; equal x with lower loss does.
        let p = [(1.0, 0.5), (1.0, 0.5), (1.0, 0.4), (f64::NAN, 0.0)];
        assert_eq!(frontier(&p, Better::Lower), vec![false, false, true, false]);
        let p = [(1.0, 0.5), (1.0, 0.5)];
        assert_eq!(frontier(&p, Better::Lower), vec![true, true]);
    }
}
