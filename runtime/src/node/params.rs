//! [`Params`]: the small immutable map a flow hands to every node it runs.

use std::sync::Arc;

use serde_json::{Map, Value};

/// Immutable params, string to JSON value, set on a flow and read by its nodes. Cheap to clone.
///
/// As in PocketFlow, a flow's params replace those of a flow nested in it: a run sees the params
/// of the outermost flow ([`Flow::with_params`](crate::Flow::with_params)), and each run of a batch
/// flow sees them merged with its item's.
///
/// ```
/// use slateflow::Params;
///
/// let params = Params::new().with("model", "small").with("temperature", 0.2);
/// assert_eq!(params.get_str("model"), Some("small"));
/// assert_eq!(params.get("temperature"), Some(&serde_json::json!(0.2)));
/// let item = Params::new().with("model", "large");
/// assert_eq!(params.merged(&item).get_str("model"), Some("large")); // the item wins
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: Option<Arc<Map<String, Value>>>,
}

impl Params {
    /// No params.
    pub const fn new() -> Self {
        Self { values: None }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.as_ref()?.get(key)
    }

    /// The value of `key`, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// Whether there are no params.
    pub fn is_empty(&self) -> bool {
        self.values.as_ref().is_none_or(|values| values.is_empty())
    }

    /// The params with `key` set to `value` (a copy: params are immutable once shared).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        Arc::make_mut(self.values.get_or_insert_with(Arc::default))
            .insert(key.into(), value.into());
        self
    }

    /// These params with every key of `other` set to its value there: `other` wins (a batch
    /// flow's item over the flow's params).
    #[must_use]
    pub fn merged(&self, other: &Params) -> Params {
        match (&self.values, &other.values) {
            (_, None) => self.clone(),
            (None, Some(_)) => other.clone(),
            (Some(base), Some(over)) => {
                let mut values = Map::clone(base);
                values.extend(over.iter().map(|(key, value)| (key.clone(), value.clone())));
                Self {
                    values: Some(Arc::new(values)),
                }
            }
        }
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values
            .iter()
            .flat_map(|values| values.iter().map(|(key, value)| (key.as_str(), value)))
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let values: Map<String, Value> = pairs
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        Self {
            values: (!values.is_empty()).then(|| Arc::new(values)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_immutable_once_shared() {
        let base = Params::new().with("model", "small");
        let shared = base.clone();
        let changed = base.with("model", "large").with("temperature", 0.5);
        assert_eq!(shared.get_str("model"), Some("small"));
        assert_eq!(changed.get_str("model"), Some("large"));
        assert_eq!(changed.iter().count(), 2);
        assert!(Params::new().is_empty());
        let collected: Params = [("k", 1)].into_iter().collect();
        assert_eq!(collected.get("k"), Some(&Value::from(1)));
    }
}
