//! Bundles (<http://hl7.org/fhir/R4/bundle.html>).

use serde_json::{Value, json};

/// A `searchset` Bundle: `link` self (and next when there is a further page), one `entry` per
/// match with its `fullUrl`, the resource and `search.mode` = `match`. No `total`: Vigil pages by
/// keyset and does not count matches.
pub fn searchset_bundle(
    self_link: &str,
    next_link: Option<&str>,
    entries: Vec<(String, Value)>,
) -> Value {
    let mut links = vec![json!({ "relation": "self", "url": self_link })];
    if let Some(next) = next_link {
        links.push(json!({ "relation": "next", "url": next }));
    }
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|(full_url, resource)| {
            json!({ "fullUrl": full_url, "resource": resource, "search": { "mode": "match" } })
        })
        .collect();
    let mut bundle = json!({ "resourceType": "Bundle", "type": "searchset", "link": links });
    // An empty array is not valid FHIR JSON: no matches means no `entry`.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// A `collection` Bundle of resources (exports, examples).
pub fn collection_bundle(resources: Vec<Value>) -> Value {
    let mut bundle = json!({ "resourceType": "Bundle", "type": "collection" });
    if !resources.is_empty() {
        bundle["entry"] = resources
            .into_iter()
            .map(|resource| json!({ "resource": resource }))
            .collect();
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searchset_shape() {
        let b = searchset_bundle(
            "http://h/fhir/Patient?_count=1",
            Some("http://h/fhir/Patient?_count=1&_offset=1"),
            vec![(
                "http://h/fhir/Patient/a".into(),
                json!({ "resourceType": "Patient", "id": "a" }),
            )],
        );
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "searchset");
        assert_eq!(
            b["link"][0],
            json!({ "relation": "self", "url": "http://h/fhir/Patient?_count=1" })
        );
        assert_eq!(b["link"][1]["relation"], "next");
        assert_eq!(b["entry"][0]["fullUrl"], "http://h/fhir/Patient/a");
        assert_eq!(b["entry"][0]["resource"]["id"], "a");
        assert_eq!(b["entry"][0]["search"]["mode"], "match");
        assert!(b.get("total").is_none());
    }

    #[test]
    fn last_page_has_no_next_and_no_empty_entry_array() {
        let b = searchset_bundle("http://h/fhir/Device", None, Vec::new());
        assert_eq!(b["link"].as_array().unwrap().len(), 1);
        assert!(b.get("entry").is_none());
    }

    #[test]
    fn collection_shape() {
        let b = collection_bundle(vec![json!({ "resourceType": "Patient", "id": "a" })]);
        assert_eq!(b["type"], "collection");
        assert_eq!(b["entry"][0]["resource"]["id"], "a");
    }
}
