//! Numbers and dtypes as plan JSON writes them.

pub(crate) mod dtype {
    use adcat_store::DType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DType, D::Error> {
        let t = String::deserialize(d)?;
        t.parse().map_err(|_| serde::de::Error::custom(format!("unknown dtype {t:?}")))
    }
}

/// f64 in JSON, which has no NaN or infinities: those are written as strings.
pub(crate) mod float {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(f: &f64, s: S) -> Result<S::Ok, S::Error> {
        if f.is_finite() { s.serialize_f64(*f) } else { s.serialize_str(&f.to_string().to_lowercase()) }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        F(f64),
        S(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Num::deserialize(d)? {
            Num::F(f) => Ok(f),
            Num::S(s) => s.parse().map_err(|_| serde::de::Error::custom(format!("not a number: {s:?}"))),
        }
    }
}
