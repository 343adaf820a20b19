//! Narrative hyperlinks that must resolve: an `a` whose `href` is `#x` and
//! an `img` whose `src` is `#x` name an `id` in the resource (or, for an
//! `a`, in the Bundle holding it), as the HL7 Java validator checks them.
//!
//! | link | target counted | none found | several found | source |
//! | --- | --- | --- | --- | --- |
//! | `a href="#x"` (not `#` alone) | elements with `id` `x` (resources, datatypes, `_x` primitive objects) and XHTML elements with `id="x"` or `a name="x"`, in the resource; when none, in the whole Bundle holding it | error | warning | Java `InstanceValidator.checkReferences` (`TYPE_SPECIFIC_CHECKS_DT_XHTML_RESOLVE`, `…_MULTIPLE_MATCHES`) and `countTargetMatches` |
//! | `img src="#x"` | elements with `id` `x` and XHTML elements with `id="x"`, in the resource | error | error | Java `InstanceValidator.checkImageSources` and `BaseValidator.countFragmentMatches` |
//!
//! The links of a div are read only once [`crate::narrative::check_div`]
//! accepted its markup (Java checks a parsed div only), and only when the
//! div holds `"#` or `'#` at all ([`may_link`]): a `#` written as a
//! character reference (`&#35;`) at the start of an attribute value is not
//! seen, which can only make this check report less than Java does.
//! Messages name the element path (`div/table/tr/td/a`), never the
//! fragment or the link's text (narratives hold patient data).

use ehds_fhir::Node;

/// What kind of element links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// `a href="#x"`.
    Anchor,
    /// `img src="#x"`.
    Image,
}

/// One `#` link of a narrative div.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentLink {
    /// `a` or `img`.
    pub kind: LinkKind,
    /// The fragment, without its `#` (references decoded).
    pub fragment: String,
    /// Where it is, as Java writes it: `div/p/a`.
    pub xpath: String,
}

/// Whether `div` may hold a `#` link (an attribute value starting with
/// `#`): the cheap test before [`fragment_links`].
pub fn may_link(div: &str) -> bool {
    let bytes = div.as_bytes();
    memchr::memchr_iter(b'#', bytes).any(|at| {
        at.checked_sub(1)
            .and_then(|before| bytes.get(before))
            .is_some_and(|b| matches!(b, b'"' | b'\''))
    })
}

/// The `a href="#x"` (not `#` alone) and `img src="#x"` links of a
/// well-formed div, in document order.
pub fn fragment_links(div: &str) -> Vec<FragmentLink> {
    let mut links = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    scan(div, &mut |event| match event {
        Event::Start {
            name,
            attributes,
            empty,
        } => {
            let wanted = match name {
                "a" => Some((LinkKind::Anchor, "href")),
                "img" => Some((LinkKind::Image, "src")),
                _ => None,
            };
            if let Some((kind, attribute)) = wanted
                && let Some(value) = attribute_value(attributes, attribute)
                && let Some(fragment) = value.strip_prefix('#')
                && !(kind == LinkKind::Anchor && fragment.is_empty())
            {
                let mut xpath = String::from("div");
                // The root div is the first name; Java starts its path there.
                for open in names.iter().skip(1) {
                    xpath.push('/');
                    xpath.push_str(open);
                }
                if !names.is_empty() {
                    xpath.push('/');
                    xpath.push_str(name);
                }
                links.push(FragmentLink {
                    kind,
                    fragment: fragment.to_owned(),
                    xpath,
                });
            }
            if !empty {
                names.push(name);
            }
        }
        Event::End => {
            names.pop();
        }
    });
    links
}

/// The targets of `#` links in a well-formed div, counted into `targets`:
/// every element's `id` and (with `names`) every `a` element's `name`
/// (Java `countTargetMatches` on an `XhtmlNode`; the root div counts too).
pub fn collect_in_div<'s>(div: &'s str, names: bool, targets: &mut Targets<'s>) {
    scan(div, &mut |event| {
        if let Event::Start {
            name, attributes, ..
        } = event
        {
            if let Some(id) = attribute_value(attributes, "id") {
                *targets.entry(id).or_default() += 1;
            }
            if names
                && name == "a"
                && let Some(anchor) = attribute_value(attributes, "name")
            {
                *targets.entry(anchor).or_default() += 1;
            }
        }
    });
}

/// How many elements carry each id: what `#id` may name. The ids are the
/// sender's, so the map's hash is seeded per process (foldhash), not a
/// fixed one a sender could flood with colliding ids.
pub type Targets<'s> =
    std::collections::HashMap<std::borrow::Cow<'s, str>, usize, foldhash::fast::RandomState>;

/// The targets of `#` links in a resource (or Bundle), counted into
/// `targets`: every JSON object's `"id"` (Java `Element.getIdBase()`:
/// resources, datatypes, backbone elements and the `_x` objects of
/// primitives), and the elements of every narrative div
/// ([`collect_in_div`]).
pub fn collect_targets<'s>(root: &'s Node, names: bool, targets: &mut Targets<'s>) {
    let mut pending: Vec<&Node> = vec![root];
    while let Some(node) = pending.pop() {
        if let Some(members) = node.as_object() {
            for member in members {
                match (&*member.key, member.node.as_str()) {
                    ("id", Some(id)) => *targets.entry(id.into()).or_default() += 1,
                    ("div", Some(div)) => collect_in_div(div, names, targets),
                    _ => pending.push(&member.node),
                }
            }
        } else if let Some(items) = node.as_array() {
            pending.extend(items.iter());
        }
    }
}

/// How many elements of `root` are targets of `#fragment` ([`collect_targets`]).
pub fn count_targets(root: &Node, fragment: &str, names: bool) -> usize {
    let mut targets = Targets::default();
    collect_targets(root, names, &mut targets);
    targets.get(fragment).copied().unwrap_or(0)
}

/// The value of attribute `name` (references decoded), if written.
fn attribute_value<'s>(
    attributes: &[(&'s str, &'s str)],
    name: &str,
) -> Option<std::borrow::Cow<'s, str>> {
    let (_, raw) = attributes.iter().find(|(n, _)| *n == name)?;
    super::decode_references(raw).ok()
}

/// What the scanner meets.
enum Event<'s, 'a> {
    /// A start tag (`empty` for `<x/>`).
    Start {
        name: &'s str,
        attributes: &'a [(&'s str, &'s str)],
        empty: bool,
    },
    /// An end tag.
    End,
}

/// Reads the tags of a well-formed div (one [`check_div`] accepted):
/// comments, processing instructions and text are skipped.
///
/// [`check_div`]: crate::narrative::check_div
fn scan<'s>(div: &'s str, on: &mut dyn FnMut(Event<'s, '_>)) {
    let mut attributes: Vec<(&'s str, &'s str)> = Vec::new();
    let mut rest = div;
    while let Some(open) = rest.find('<') {
        rest = rest.get(open.saturating_add(1)..).unwrap_or_default();
        if let Some(after) = rest.strip_prefix("!--") {
            rest = after
                .find("-->")
                .and_then(|end| after.get(end.saturating_add(3)..))
                .unwrap_or_default();
            continue;
        }
        if rest.starts_with('!') || rest.starts_with('?') {
            rest = rest
                .find('>')
                .and_then(|end| rest.get(end.saturating_add(1)..))
                .unwrap_or_default();
            continue;
        }
        if rest.starts_with('/') {
            on(Event::End);
            rest = rest
                .find('>')
                .and_then(|end| rest.get(end.saturating_add(1)..))
                .unwrap_or_default();
            continue;
        }
        let name_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
            .unwrap_or(rest.len());
        let name = rest.get(..name_end).unwrap_or_default();
        rest = rest.get(name_end..).unwrap_or_default();
        attributes.clear();
        let mut empty = false;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
            if let Some(after) = rest.strip_prefix("/>") {
                empty = true;
                rest = after;
                break;
            }
            if let Some(after) = rest.strip_prefix('>') {
                rest = after;
                break;
            }
            let Some(equals) = rest.find('=') else {
                rest = "";
                break;
            };
            let attribute = rest.get(..equals).unwrap_or_default().trim_end();
            let after = rest
                .get(equals.saturating_add(1)..)
                .unwrap_or_default()
                .trim_start_matches(|c: char| c.is_ascii_whitespace());
            let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                rest = "";
                break;
            };
            let value_and_rest = after.get(1..).unwrap_or_default();
            let Some(close) = value_and_rest.find(quote) else {
                rest = "";
                break;
            };
            attributes.push((attribute, value_and_rest.get(..close).unwrap_or_default()));
            rest = value_and_rest
                .get(close.saturating_add(1)..)
                .unwrap_or_default();
        }
        on(Event::Start {
            name,
            attributes: &attributes,
            empty,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIV: &str = r##"<div xmlns="http://www.w3.org/1999/xhtml" id="top"><!-- <a href="#no"/> --><table><tr><td><a href="#x">x</a></td></tr></table><p><a href="#">self</a><a href='#y&amp;z'>y</a><img src="#pic"/><a name="x"/></p><span id="x">t</span></div>"##;

    #[test]
    fn links_are_read_with_their_path() {
        assert!(may_link(DIV));
        let links = fragment_links(DIV);
        let found: Vec<(LinkKind, &str, &str)> = links
            .iter()
            .map(|l| (l.kind, l.fragment.as_str(), l.xpath.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (LinkKind::Anchor, "x", "div/table/tr/td/a"),
                (LinkKind::Anchor, "y&z", "div/p/a"),
                (LinkKind::Image, "pic", "div/p/img"),
            ]
        );
        assert!(!may_link(
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><a href="http://x/#y">y</a></div>"#
        ));
    }

    #[test]
    fn targets_are_ids_and_anchor_names() {
        let count = |fragment: &str, names: bool| {
            let mut targets = Targets::default();
            collect_in_div(DIV, names, &mut targets);
            targets.get(fragment).copied().unwrap_or(0)
        };
        assert_eq!(count("x", true), 2);
        assert_eq!(count("x", false), 1);
        assert_eq!(count("top", false), 1);
        assert_eq!(count("no", true), 0);
        let resource = ehds_fhir::json::parse(
            br#"{"resourceType":"List","id":"l","contained":[{"resourceType":"Appointment","id":"a"}],
               "_title":{"id":"t"},"text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p id=\"a\">a</p></div>"}}"#,
        )
        .unwrap();
        assert_eq!(count_targets(&resource, "a", true), 2);
        assert_eq!(count_targets(&resource, "t", true), 1);
        assert_eq!(count_targets(&resource, "l", true), 1);
        assert_eq!(count_targets(&resource, "List/l", true), 0);
    }
}
