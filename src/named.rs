//! `named!`: constants that JS reads by name (see `constants`).

/// Declares a module of `u32` constants and `NAMES`, every one of them by
/// its name, which `constants()` hands to JS: the value and the name are
/// written once.
macro_rules! named {
    ($(#[$doc:meta])* $vis:vis mod $m:ident { $($(#[$d:meta])* $name:ident = $v:expr;)* }) => {
        $(#[$doc])*
        $vis mod $m {
            $($(#[$d])* pub const $name: u32 = $v;)*
            /// Every constant of this module by name, for `constants()`.
            pub const NAMES: &[(&str, u32)] = &[$((stringify!($name), $name)),*];
        }
    };
}

pub(crate) use named;
