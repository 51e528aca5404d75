//! Deterministic stratified partitions: every part keeps the class proportions of the whole
//! (to within one sample per class), and the same labels and seed always give the same parts.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// How many samples of each class a part of `take` samples gets: proportional shares, the
/// remainders going to the classes with the largest fractional parts (ties: lower class).
pub fn stratified_quotas(class_counts: &[usize], take: usize) -> Vec<usize> {
    let total: usize = class_counts.iter().sum();
    if total == 0 {
        return vec![0; class_counts.len()];
    }
    let take = take.min(total);
    let exact: Vec<f64> = class_counts
        .iter()
        .map(|count| *count as f64 * take as f64 / total as f64)
        .collect();
    let mut quotas: Vec<usize> = exact.iter().map(|share| share.floor() as usize).collect();
    let mut order: Vec<usize> = (0..class_counts.len()).collect();
    order.sort_by(|a, b| {
        let fraction = |i: usize| exact[i] - exact[i].floor();
        fraction(*b).total_cmp(&fraction(*a)).then(a.cmp(b))
    });
    let mut missing = take - quotas.iter().sum::<usize>();
    for class in order.into_iter().cycle() {
        if missing == 0 {
            break;
        }
        if quotas[class] < class_counts[class] {
            quotas[class] += 1;
            missing -= 1;
        }
    }
    quotas
}

/// Splits the sample indices `0..labels.len()` into parts of `sizes[i]` samples each, plus the
/// remaining samples as the last part; each part is stratified by label and sorted.
/// Labels must lie in `0..classes`; `sizes` must sum to at most `labels.len()`.
pub fn stratified_partition(
    labels: &[i64],
    classes: usize,
    sizes: &[usize],
    seed: u64,
) -> Vec<Vec<usize>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (index, label) in labels.iter().enumerate() {
        by_class[*label as usize].push(index);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for members in &mut by_class {
        members.shuffle(&mut rng);
    }
    let mut parts = Vec::with_capacity(sizes.len() + 1);
    for size in sizes {
        let counts: Vec<usize> = by_class.iter().map(Vec::len).collect();
        let quotas = stratified_quotas(&counts, *size);
        let mut part = Vec::with_capacity(*size);
        for (members, quota) in by_class.iter_mut().zip(quotas) {
            part.extend(members.drain(..quota));
        }
        part.sort_unstable();
        parts.push(part);
    }
    let mut rest: Vec<usize> = by_class.into_iter().flatten().collect();
    rest.sort_unstable();
    parts.push(rest);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_sum_to_the_request_and_follow_the_proportions() {
        let quotas = stratified_quotas(&[900, 90, 10], 100);
        assert_eq!(quotas, vec![90, 9, 1]);
        let quotas = stratified_quotas(&[5, 5, 5], 4);
        assert_eq!(quotas.iter().sum::<usize>(), 4);
        assert!(quotas.iter().all(|q| *q == 1 || *q == 2));
        assert_eq!(stratified_quotas(&[3, 1], 10), vec![3, 1]);
    }

    #[test]
    fn partitions_are_disjoint_complete_stratified_and_reproducible() {
        let labels: Vec<i64> = (0..1000).map(|i| if i % 10 == 0 { 1 } else { 0 }).collect();
        let parts = stratified_partition(&labels, 2, &[200, 100], 7);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [200, 100, 700]
        );
        let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let minority = |part: &Vec<usize>| part.iter().filter(|i| labels[**i] == 1).count();
        assert_eq!(minority(&parts[0]), 20);
        assert_eq!(minority(&parts[1]), 10);
        assert_eq!(parts, stratified_partition(&labels, 2, &[200, 100], 7));
        assert_ne!(parts, stratified_partition(&labels, 2, &[200, 100], 8));
    }
}
