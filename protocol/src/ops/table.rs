//! The machinery behind the op table in `ops/mod.rs`: the [`Priority`] classes an op can be
//! shed by, and the `op_table!` macro that turns the table (each op listed once, with its wire
//! name, parameter type, area and shedding class) into the [`Op`](super::Op) enum, one
//! sub-enum per area, the decoder, `name()`, `area()`, `priority()` and
//! [`OP_NAMES`](super::OP_NAMES).
//!
//! Everything that used to repeat the op list (the decoder's match, the name match, the
//! name list, the shedding match in the actors crate) now derives from that one listing, so
//! an op cannot be decodable yet missing a name or a priority.

/// How important a request is when the node is overloaded (shed from the lowest; SPEC
/// section 7). The numeric value is the overload level from which the class is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Feeds, timelines, history pages: shed first.
    Low = 1,
    /// Chat (join, send, DMs): shed next.
    Medium = 2,
    /// Claims and countdown subscriptions: shed last.
    High = 3,
    /// Authentication and clock sync: never shed.
    Critical = 4,
}

impl Priority {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// Builds the op types from the table. Input, per area:
///
/// ```text
/// /// docs
/// Area(AreaOp) {
///     /// docs
///     Variant(Params) = "wire.name", PriorityClass;
/// }
/// ```
macro_rules! op_table {
    ($(
        $(#[$area_doc:meta])*
        $area:ident($area_op:ident) {
            $(
                $(#[$op_doc:meta])*
                $variant:ident($params:ty) = $name:literal, $priority:ident;
            )+
        }
    )+) => {
        /// The area an op belongs to: which part of the session serves it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Area {
            $( $(#[$area_doc])* $area, )+
        }

        $(
            $(#[$area_doc])*
            #[derive(Debug, Clone, PartialEq)]
            pub enum $area_op {
                $( $(#[$op_doc])* $variant($params), )+
            }

            impl $area_op {
                /// The op's wire name (a `&'static str`, usable as a metrics label).
                pub fn name(&self) -> &'static str {
                    match self {
                        $( $area_op::$variant(_) => $name, )+
                    }
                }

                /// How early the op is shed under overload.
                pub fn priority(&self) -> Priority {
                    match self {
                        $( $area_op::$variant(_) => Priority::$priority, )+
                    }
                }
            }

            impl From<$area_op> for Op {
                fn from(op: $area_op) -> Op {
                    Op::$area(op)
                }
            }
        )+

        /// Every operation a client can request, with its parameters, grouped by area so that
        /// each part of the session receives only (and all of) its own ops.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Op {
            $( $(#[$area_doc])* $area($area_op), )+
        }

        /// Every op name, in documentation order.
        pub const OP_NAMES: &[&str] = &[ $( $( $name, )+ )+ ];

        impl Op {
            /// Decodes the parameters of op `name` from the whole frame `text` (the envelope
            /// fields are ignored by every parameter type). `None` when the op is unknown.
            pub fn decode(name: &str, text: &str) -> Option<Result<Op, serde_json::Error>> {
                Some(match name {
                    $( $(
                        $name => serde_json::from_str::<$params>(text)
                            .map(|p| Op::$area($area_op::$variant(p))),
                    )+ )+
                    _ => return None,
                })
            }

            /// The op's wire name (a `&'static str`, usable as a metrics label).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Op::$area(op) => op.name(), )+
                }
            }

            /// The area the op belongs to.
            pub fn area(&self) -> Area {
                match self {
                    $( Op::$area(_) => Area::$area, )+
                }
            }

            /// How early the op is shed under overload.
            pub fn priority(&self) -> Priority {
                match self {
                    $( Op::$area(op) => op.priority(), )+
                }
            }
        }
    };
}

pub(crate) use op_table;
