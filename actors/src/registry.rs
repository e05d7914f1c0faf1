//! A per-node registry of keyed actors (rooms, activities): finds a running actor or starts
//! one under an `actix::Supervisor`, spreading actors over a pool of arbiters (threads).

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::{Actor, Addr, Arbiter, ArbiterHandle, Context, Supervised, Supervisor};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

/// The node's actor threads, shared by every registry.
pub struct Arbiters {
    handles: Vec<ArbiterHandle>,
    next: AtomicUsize,
}

impl Arbiters {
    /// Starts `n` arbiter threads (at least one).
    pub fn start(n: usize) -> Arc<Arbiters> {
        let handles = (0..n.max(1)).map(|_| Arbiter::new().handle()).collect();
        Arc::new(Arbiters {
            handles,
            next: AtomicUsize::new(0),
        })
    }

    /// The next arbiter, round robin.
    pub fn pick(&self) -> ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].clone()
    }
}

/// Keyed, supervised actors of one kind.
pub struct Registry<K, A>
where
    K: Eq + Hash + Clone,
    A: Actor<Context = Context<A>> + Supervised,
{
    arbiters: Arc<Arbiters>,
    actors: DashMap<K, Addr<A>>,
}

impl<K, A> Registry<K, A>
where
    K: Eq + Hash + Clone,
    A: Actor<Context = Context<A>> + Supervised + Send,
{
    /// An empty registry whose actors run on `arbiters`.
    pub fn new(arbiters: Arc<Arbiters>) -> Self {
        Registry {
            arbiters,
            actors: DashMap::new(),
        }
    }

    /// The running actor for `key`, or a new one made by `make` (run on its arbiter). A
    /// registered actor that stopped for good is replaced.
    pub fn get_or_start<F>(&self, key: &K, make: F) -> Addr<A>
    where
        F: FnOnce() -> A + Send + 'static,
    {
        if let Some(addr) = self.actors.get(key)
            && addr.connected()
        {
            return addr.clone();
        }
        // The entry guard serialises concurrent starters of the same key; starting only
        // posts a closure to the arbiter, so the guard is held briefly.
        match self.actors.entry(key.clone()) {
            Entry::Occupied(mut entry) if !entry.get().connected() => {
                let addr = self.start(make);
                entry.insert(addr.clone());
                addr
            }
            Entry::Occupied(entry) => entry.get().clone(),
            Entry::Vacant(entry) => {
                let addr = self.start(make);
                entry.insert(addr.clone());
                addr
            }
        }
    }

    fn start<F>(&self, make: F) -> Addr<A>
    where
        F: FnOnce() -> A + Send + 'static,
    {
        Supervisor::start_in_arbiter(&self.arbiters.pick(), move |_| make())
    }

    /// The running actor for `key`, if any.
    pub fn get(&self, key: &K) -> Option<Addr<A>> {
        self.actors
            .get(key)
            .filter(|a| a.connected())
            .map(|a| a.clone())
    }

    /// Forgets `key` (its actor stopped for good).
    pub fn remove(&self, key: &K) {
        self.actors.remove(key);
    }

    /// Forgets `key` if `addr` is still its actor (a stopping actor does not evict its
    /// successor).
    pub fn remove_if_same(&self, key: &K, addr: &Addr<A>) {
        self.actors
            .remove_if(key, |_, registered| registered == addr);
    }

    /// How many actors are registered.
    pub fn len(&self) -> usize {
        self.actors.len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.actors.is_empty()
    }
}
