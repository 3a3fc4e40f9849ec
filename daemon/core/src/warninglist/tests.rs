#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn list(slug: &str, t: ListType, entries: &[&str]) -> WarningList {
    WarningList {
        slug: slug.into(),
        name: format!("List {slug}"),
        description: "test".into(),
        version: 1,
        list_type: t,
        entries: entries.iter().map(|e| (*e).to_string()).collect(),
        matching_attributes: Vec::new(),
    }
}

fn ind(kind: IndicatorKind, value: &str) -> Indicator {
    Indicator {
        kind,
        value: value.into(),
        confidence: 0,
        valid_until_ms: None,
        note: String::new(),
    }
}

#[test]
fn list_files_parse_with_errors_naming_file_and_field() {
    let f = Path::new("/lists/x/list.json");
    let ok = parse_list(
        br#"{"name": "N", "description": "D", "version": "20240101", "type": "cidr",
            "list": ["192.0.2.0/24"], "matching_attributes": ["ip-dst"], "extra": 1}"#,
        "x",
        f,
    )
    .unwrap();
    assert_eq!(ok.version, 20_240_101);
    assert_eq!(ok.list_type, ListType::Cidr);
    assert_eq!(ok.slug, "x");
    assert_eq!(ok.matching_attributes, ["ip-dst"]);

    let e = parse_list(
        br#"{"name": "N", "description": "D", "version": 1, "type": "glob", "list": []}"#,
        "x",
        f,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("/lists/x/list.json: type:"),
        "{e}"
    );
    let e = parse_list(
        br#"{"name": "N", "version": 1, "type": "string", "list": []}"#,
        "x",
        f,
    )
    .unwrap_err();
    assert!(e.to_string().contains("description"), "{e}");
    let e = parse_list(
        br#"{"name": "N", "description": "D", "version": 1, "type": "string", "list": [1]}"#,
        "x",
        f,
    )
    .unwrap_err();
    assert!(e.to_string().contains("list[0]"), "{e}");
    let e = parse_list(
        br#"{"name": "N", "description": "D", "version": [], "type": "string", "list": []}"#,
        "x",
        f,
    )
    .unwrap_err();
    assert!(e.to_string().contains("version"), "{e}");
    assert!(parse_list(b"not json", "x", f).is_err());
}

#[test]
fn string_lists_match_exactly_and_case_sensitively() {
    let (w, p) = WarningLists::new(vec![list(
        "s",
        ListType::String,
        &["www.example", "COM", "0123456789abcdef0123456789abcdef"],
    )]);
    assert!(p.is_empty());
    assert_eq!(w.check(IndicatorKind::Domain, "www.example"), ["s"]);
    assert!(w.check(IndicatorKind::Domain, "a.www.example").is_empty());
    assert!(w.check(IndicatorKind::Domain, "com").is_empty());
    assert_eq!(
        w.check(IndicatorKind::Md5, "0123456789abcdef0123456789abcdef"),
        ["s"]
    );
}

#[test]
fn hostname_lists_match_the_host_and_its_subdomains() {
    let (w, _) = WarningLists::new(vec![list(
        "h",
        ListType::Hostname,
        &["dyn.example", ".lead.example", "Upper.example"],
    )]);
    let c = |v: &str| w.check(IndicatorKind::Domain, v);
    assert_eq!(c("dyn.example"), ["h"]);
    assert_eq!(c("a.b.dyn.example"), ["h"]);
    assert!(c("notdyn.example").is_empty());
    // A leading dot is stripped for the suffix test only.
    assert_eq!(c("x.lead.example"), ["h"]);
    assert!(c("lead.example").is_empty());
    assert_eq!(c(".lead.example"), ["h"]);
    // The host of a URL is used (lower-cased by urlparse); list entries are not lower-cased.
    assert_eq!(
        w.check(IndicatorKind::Url, "http://www.dyn.example:8080/gate.php"),
        ["h"]
    );
    assert!(c("upper.example").is_empty());
    // An e-mail address is no URL: its whole text is compared.
    assert!(
        w.check(IndicatorKind::Email, "alice@dyn.example")
            .is_empty()
    );
    assert_eq!(w.check(IndicatorKind::Email, "alice@mx.dyn.example"), ["h"]);
}

#[test]
fn cidr_lists_match_addresses_inside_and_other_values_by_text() {
    let (w, problems) = WarningLists::new(vec![
        list(
            "c",
            ListType::Cidr,
            &[
                "192.0.2.0/24",
                "198.51.100.7",
                "2001:DB8::/32",
                "203.0.113.9/24",
            ],
        ),
        list("c2", ListType::Cidr, &["192.0.2.128/25"]),
    ]);
    // The host-bits entry is reported and kept for exact text only.
    assert_eq!(problems.len(), 1);
    assert_eq!((problems[0].list.as_str(), problems[0].index), ("c", 3));
    assert_eq!(w.check(IndicatorKind::Ipv4, "192.0.2.1"), ["c"]);
    assert_eq!(w.check(IndicatorKind::Ipv4, "192.0.2.200"), ["c", "c2"]);
    assert_eq!(w.check(IndicatorKind::Ipv4, "198.51.100.7"), ["c"]);
    assert!(w.check(IndicatorKind::Ipv4, "198.51.100.8").is_empty());
    assert_eq!(w.check(IndicatorKind::Ipv6, "2001:db8::1"), ["c"]);
    assert!(w.check(IndicatorKind::Ipv4, "203.0.113.9").is_empty());
    // Networks are compared as text, exactly as pymispwarninglists does.
    assert_eq!(w.check(IndicatorKind::Cidr, "192.0.2.0/24"), ["c"]);
    assert!(w.check(IndicatorKind::Cidr, "192.0.2.0/25").is_empty());
    assert!(w.check(IndicatorKind::Cidr, "2001:db8::/32").is_empty());
    assert_eq!(w.check(IndicatorKind::Cidr, "203.0.113.9/24"), ["c"]);
}

#[test]
fn substring_lists_match_anywhere_and_empty_entries_match_everything() {
    let (w, _) = WarningLists::new(vec![
        list("sub", ListType::Substring, &["zyns.com", "mailinator"]),
        list("all", ListType::Substring, &[""]),
    ]);
    assert_eq!(
        w.check(IndicatorKind::Domain, "fbi.zyns.com"),
        ["all", "sub"]
    );
    assert_eq!(
        w.check(IndicatorKind::Email, "x@mailinator.example"),
        ["all", "sub"]
    );
    assert_eq!(w.check(IndicatorKind::Domain, "other.example"), ["all"]);
}

#[test]
fn regex_lists_follow_misp_notation_and_their_attribute_types() {
    let mut contact = list(
        "contacts",
        ListType::Regex,
        &[r"/^(security|noc|soc|abuse)\@.*\..*$/i", "/bad(/", "/x/e"],
    );
    contact.matching_attributes = vec!["email-dst".into(), "target-email".into()];
    let phones = list(
        "phones",
        ListType::Regex,
        &[r"/((?:\+|00)1)?55501([0-9]{2})/g"],
    );
    let (w, problems) = WarningLists::new(vec![contact, phones]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().all(|p| p.list == "contacts"));
    assert_eq!(
        w.check(IndicatorKind::Email, "ABUSE@cert.example"),
        ["contacts"]
    );
    assert!(
        w.check(IndicatorKind::Email, "alice@cert.example")
            .is_empty()
    );
    // Only e-mail indicators are tested against the contact list.
    assert!(
        w.check(IndicatorKind::Filename, "abuse@cert.example")
            .is_empty()
    );
    // No matching_attributes: every kind.
    assert_eq!(w.check(IndicatorKind::Filename, "5550123.txt"), ["phones"]);
}

#[test]
fn screening_reports_indices_values_and_sorted_lists() {
    let (w, _) = WarningLists::new(vec![
        list("b-list", ListType::String, &["198.51.100.1"]),
        list("a-list", ListType::Cidr, &["198.51.100.0/24"]),
    ]);
    let hits = w.screen(&[
        ind(IndicatorKind::Domain, "ok.example"),
        ind(IndicatorKind::Ipv4, "198.51.100.1"),
        ind(IndicatorKind::Ipv4, "198.51.100.2"),
    ]);
    assert_eq!(
        hits,
        vec![
            Hit {
                index: 1,
                value: "198.51.100.1".into(),
                lists: vec!["a-list".into(), "b-list".into()],
            },
            Hit {
                index: 2,
                value: "198.51.100.2".into(),
                lists: vec!["a-list".into()],
            },
        ]
    );
}
