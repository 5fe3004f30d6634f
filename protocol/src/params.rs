//! Overlaying JSON parameters on a spec's defaults, with errors that name the
//! offending field (shared by the limiter and balancer specs).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Overlays the fields of `params` (a JSON object) on `base`'s JSON form and
/// parses the result back, so unknown fields and wrong types are reported by
/// name.
pub(crate) fn merge_params<T>(base: T, params: Option<&Value>) -> Result<T, String>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    let Some(params) = params else {
        return Ok(base);
    };
    let Value::Object(over) = params else {
        return Err("parameters must be a JSON object".into());
    };
    let mut merged = serde_json::to_value(base).map_err(|e| e.to_string())?;
    let Value::Object(fields) = &mut merged else {
        return Err("internal: spec is not an object".into());
    };
    let defaults = fields.clone();
    for (k, v) in over {
        if k == "algorithm" {
            continue;
        }
        fields.insert(k.clone(), v.clone());
    }
    serde_json::from_value(merged).map_err(|e| {
        // serde's message for a bad value ("invalid value: integer `-1`,
        // expected u32") does not say which field: find the first given
        // field that fails alone on the defaults, and name it.
        let culprit = over.iter().find(|(k, v)| {
            if k.as_str() == "algorithm" {
                return false;
            }
            let mut one = defaults.clone();
            one.insert((*k).clone(), (*v).clone());
            serde_json::from_value::<T>(Value::Object(one)).is_err()
        });
        match culprit {
            Some((k, _)) => format!("{k}: {e}"),
            None => e.to_string(),
        }
    })
}
