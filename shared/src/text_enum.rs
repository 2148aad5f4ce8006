//! States kept as `text` columns (a CHECK constraint lists their values) and sent as strings:
//! [`text_enum!`](crate::text_enum!) gives an enum its one checked conversion between variant and
//! name, for Rust (`as_str`, `FromStr`, `Display`) and for PostgreSQL (`sqlx::Type`, `Encode`,
//! `Decode`, arrays), so no code compares a state's name as a string.
//!
//! The enum keeps its own `serde` and `utoipa` derives (the API's names and schema); the unit
//! test each user writes with [`assert_serde_names`] holds both spellings together.

#[doc(hidden)]
pub use sqlx as __sqlx;

/// A name that is not one of the enum's: `what` names the enum (`"status"`), `value` what came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct Unknown {
    pub what: &'static str,
    pub value: String,
}

/// Implements the conversions for an existing field-less enum:
/// `text_enum!(Priority, "priority", { Low = "low", Normal = "normal" });`
#[macro_export]
macro_rules! text_enum {
    ($name:ident, $what:literal, { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored and sent.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::text_enum::Unknown;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::text_enum::Unknown {
                        what: $what,
                        value: value.to_string(),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::text_enum::__sqlx::Type<$crate::text_enum::__sqlx::Postgres> for $name {
            fn type_info() -> $crate::text_enum::__sqlx::postgres::PgTypeInfo {
                <&str as $crate::text_enum::__sqlx::Type<$crate::text_enum::__sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &$crate::text_enum::__sqlx::postgres::PgTypeInfo) -> bool {
                <&str as $crate::text_enum::__sqlx::Type<$crate::text_enum::__sqlx::Postgres>>::compatible(ty)
            }
        }

        impl $crate::text_enum::__sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> $crate::text_enum::__sqlx::postgres::PgTypeInfo {
                <&str as $crate::text_enum::__sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl<'q> $crate::text_enum::__sqlx::Encode<'q, $crate::text_enum::__sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::text_enum::__sqlx::postgres::PgArgumentBuffer,
            ) -> Result<$crate::text_enum::__sqlx::encode::IsNull, $crate::text_enum::__sqlx::error::BoxDynError> {
                <&str as $crate::text_enum::__sqlx::Encode<'q, $crate::text_enum::__sqlx::Postgres>>::encode_by_ref(
                    &self.as_str(),
                    buf,
                )
            }
        }

        impl<'r> $crate::text_enum::__sqlx::Decode<'r, $crate::text_enum::__sqlx::Postgres> for $name {
            fn decode(
                value: $crate::text_enum::__sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, $crate::text_enum::__sqlx::error::BoxDynError> {
                let text = <&str as $crate::text_enum::__sqlx::Decode<'r, $crate::text_enum::__sqlx::Postgres>>::decode(value)?;
                Ok(text.parse::<$name>()?)
            }
        }
    };
}

/// For a unit test: every variant serializes (serde) to the name [`text_enum!`] gave it, and
/// parses back from it.
pub fn assert_serde_names<T>(all: &[T], as_str: impl Fn(&T) -> &'static str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    for value in all {
        let json = serde_json::to_value(value).expect("serializes");
        assert_eq!(json, serde_json::json!(as_str(value)), "{value:?}");
        let back: T = serde_json::from_value(json).expect("deserializes");
        assert_eq!(&back, value);
    }
}
