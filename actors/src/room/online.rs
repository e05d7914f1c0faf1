//! Who a `room.join` reply says is online: the joiner first, then this node's members, then
//! the other nodes' (each user once, at most a cap), and how many there are in all. Pure, so
//! the merge of local and cluster presence is unit-tested on its own.

use std::collections::HashSet;

use corral_protocol::UserId;

use crate::ports::chat::Online;

/// The join reply's `online` and `online_count` for `joiner`, given the users with a session
/// in the room on this node (`local`), what the cluster's presence said (`remote`, if it was
/// read) and the most users to list (`cap`, at least 1).
pub(super) fn online<I>(
    joiner: UserId,
    local: I,
    remote: Option<&Online>,
    cap: usize,
) -> (Vec<UserId>, usize)
where
    I: ExactSizeIterator<Item = UserId> + Clone,
{
    let local_count = local.len();
    let mut seen = HashSet::new();
    let everyone = std::iter::once(joiner)
        .chain(local.clone())
        .chain(remote.into_iter().flat_map(|r| r.users.iter().copied()))
        .filter(|u| seen.insert(*u));
    let listed: Vec<UserId> = everyone.take(cap.max(1)).collect();
    let count = match remote {
        // Every remote user was read: count them all once.
        Some(r) if r.users.len() >= r.count => {
            let mut all: HashSet<UserId> = local.collect();
            all.extend(r.users.iter().copied());
            all.len()
        }
        // Only some were read: the cluster's count is an upper bound.
        Some(r) => r.count.max(local_count),
        None => local_count,
    };
    (listed, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_the_node_lists_the_joiner_first_and_counts_its_members() {
        let (listed, count) = online(3, [1, 3, 2].into_iter(), None, 10);
        assert_eq!(listed, [3, 1, 2]);
        assert_eq!(count, 3);
    }

    #[test]
    fn the_cap_limits_the_list_not_the_count() {
        let (listed, count) = online(9, [1, 2, 3].into_iter(), None, 2);
        assert_eq!(listed, [9, 1]);
        assert_eq!(count, 3);
    }

    #[test]
    fn a_complete_remote_read_counts_each_user_once() {
        let remote = Online {
            users: vec![2, 4, 5],
            count: 3,
        };
        let (listed, count) = online(1, [1, 2].into_iter(), Some(&remote), 10);
        assert_eq!(listed, [1, 2, 4, 5]);
        assert_eq!(count, 4);
    }

    #[test]
    fn a_partial_remote_read_takes_the_clusters_count() {
        let remote = Online {
            users: vec![4],
            count: 50,
        };
        let (listed, count) = online(1, [1].into_iter(), Some(&remote), 10);
        assert_eq!(listed, [1, 4]);
        assert_eq!(count, 50);
    }
}
