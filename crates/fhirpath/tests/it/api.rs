//! The API the validator uses: invariants that must fail on bad content,
//! typed navigation, primitives with extensions, and the hooks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::cell::RefCell;
use std::sync::OnceLock;

use ehds_fhir::Node;
use ehds_fhirpath::{EvalContext, EvalError, Expression, Hooks, Item, Model, ParseError};
use ehds_profiles::Registry;
use ehds_test_support::repo_root;

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        Model::from_registry(&Registry::load_root(&repo_root().join("profiles")).unwrap())
    })
}

fn doc(json: &str) -> Node {
    ehds_fhir::json::parse(json.as_bytes()).unwrap()
}

/// Evaluates `expr` as an invariant on the resource.
fn holds(json: &str, expr: &str) -> bool {
    let node = doc(json);
    let ctx = EvalContext::new(model(), &node);
    Expression::parse(expr)
        .unwrap()
        .evaluate_constraint(&ctx)
        .unwrap()
}

/// Evaluates `expr` as an invariant on each element `path` selects.
fn holds_on(json: &str, path: &str, expr: &str) -> Vec<bool> {
    let node = doc(json);
    let resource = Item::resource(&node, model());
    let ctx = EvalContext::new(model(), &node);
    let invariant = Expression::parse(expr).unwrap();
    Expression::parse(path)
        .unwrap()
        .evaluate(&ctx)
        .unwrap()
        .into_iter()
        .map(|element| {
            let ctx =
                EvalContext::for_element(model(), element, resource.clone(), resource.clone());
            invariant.evaluate_constraint(&ctx).unwrap()
        })
        .collect()
}

const ELE_1: &str = "hasValue() or (children().count() > id.count())";

#[test]
fn ele_1_fails_on_an_element_with_only_an_id() {
    let json = r#"{"resourceType":"Patient","name":[{"id":"n1"},{"family":"Doe"}]}"#;
    assert_eq!(holds_on(json, "Patient.name", ELE_1), [false, true]);
    // A primitive with only an extension has children; one with a value holds.
    let json = r#"{"resourceType":"Patient","birthDate":"1970","_gender":{"extension":[{"url":"x","valueString":"y"}]}}"#;
    assert_eq!(
        holds_on(json, "Patient.birthDate | Patient.gender", ELE_1),
        [true, true]
    );
}

#[test]
fn resource_invariants_fail_on_bad_content() {
    // dom-2: no nested contained resources.
    let nested = r#"{"resourceType":"Patient","contained":[{"resourceType":"Patient","id":"a","contained":[{"resourceType":"Patient","id":"b"}]}]}"#;
    assert!(!holds(nested, "contained.contained.empty()"));
    // obs-6: dataAbsentReason only without a value.
    let obs = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1},"dataAbsentReason":{"text":"no"}}"#;
    assert!(!holds(obs, "dataAbsentReason.empty() or value.empty()"));
    // bdl-7: fullUrl unique.
    let bundle = r#"{"resourceType":"Bundle","type":"collection","entry":[
        {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"}},
        {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"}}]}"#;
    let bdl_7 = "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()";
    assert!(!holds(bundle, bdl_7));
}

#[test]
fn per_1_fails_on_dates_of_different_precision_as_in_java() {
    let per_1 = "start.hasValue().not() or end.hasValue().not() or (start <= end)";
    let json = |start: &str, end: &str| {
        format!(
            r#"{{"resourceType":"Encounter","status":"finished","class":{{"code":"x"}},"period":{{"start":"{start}","end":"{end}"}}}}"#
        )
    };
    assert_eq!(
        holds_on(&json("2020-02-01", "2020-01-01"), "Encounter.period", per_1),
        [false]
    );
    assert_eq!(
        holds_on(
            &json("2020-01-01", "2020-02-01T10:00:00Z"),
            "Encounter.period",
            per_1
        ),
        [true]
    );
    // Same day at different precisions: `start <= end` is empty (FHIRPath
    // N1 comparison), and an empty invariant result fails, as in Java
    // (FHIRPathEngine.convertToBoolean; fhir-test-cases encounter-period).
    assert_eq!(
        holds_on(
            &json("2020-01-01", "2020-01-01T10:00:00Z"),
            "Encounter.period",
            per_1
        ),
        [false]
    );
}

#[test]
fn choice_elements_and_types() {
    let json = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"},"effectiveDateTime":"2020-01-01T10:00:00Z"}"#;
    assert!(holds(json, "value is Quantity"));
    assert!(holds(json, "value.ofType(Quantity).value = 1.5"));
    assert!(holds(json, "value.value.toString() = '1.50'"));
    assert!(holds(json, "value > 1 'mg' and value < 0.002 'g'"));
    assert!(holds(json, "effective > @2019-12-31"));
    assert!(holds(
        json,
        "(effective as dateTime).toString().length() >= 8"
    ));
    assert!(holds(
        json,
        "status is code and status.is(string) and status = 'final'"
    ));
    // valueQuantity is JSON, not FHIRPath.
    let node = doc(json);
    let ctx = EvalContext::new(model(), &node);
    assert!(
        Expression::parse("valueQuantity.exists()")
            .unwrap()
            .evaluate(&ctx)
            .is_err()
    );
}

#[test]
fn primitive_extensions_are_reachable() {
    let json = r#"{"resourceType":"Patient","birthDate":"1970-03-30","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-03-30T10:00:00Z"}]}}"#;
    assert!(holds(
        json,
        "birthDate.extension(%`ext-patient-birthTime`).value > @1970-03-30T09:00:00Z"
    ));
    assert!(holds(
        json,
        "birthDate.hasValue() and birthDate = @1970-03-30"
    ));
}

struct TestHooks<'a> {
    target: &'a Node,
    traced: RefCell<Vec<String>>,
}

impl<'a> Hooks<'a> for TestHooks<'a> {
    fn resolve(&self, reference: &str) -> Option<&'a Node> {
        (reference == "urn:uuid:p1").then_some(self.target)
    }
    fn member_of(&self, item: &Item<'a>, type_name: &str, value_set: &str) -> Option<bool> {
        let code = match item {
            Item::Node(n) => n.value?.get("code").and_then(Node::as_str),
            _ => None,
        };
        (value_set == "http://example.org/vs").then(|| type_name == "Coding" && code == Some("a"))
    }
    fn html_checks(&self, _div: &Item<'a>) -> bool {
        false
    }
    fn trace(&self, name: &str, items: &[Item<'a>]) {
        self.traced
            .borrow_mut()
            .push(format!("{name}:{}", items.len()));
    }
}

#[test]
fn hooks_answer_what_the_engine_cannot() {
    let bundle = doc(r##"{"resourceType":"Bundle","type":"document","entry":[
        {"fullUrl":"urn:uuid:c1","resource":{"resourceType":"Composition","subject":{"reference":"urn:uuid:p1"},
          "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
          "contained":[{"resourceType":"Practitioner","id":"pr"}],"author":[{"reference":"#pr"}],
          "category":[{"coding":[{"code":"a"}]}]}},
        {"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","id":"p1"}}]}"##);
    let composition = bundle.get("entry").unwrap().items()[0]
        .get("resource")
        .unwrap();
    let patient = bundle.get("entry").unwrap().items()[1]
        .get("resource")
        .unwrap();
    let hooks = TestHooks {
        target: patient,
        traced: RefCell::new(Vec::new()),
    };
    let model = model();
    let ctx = EvalContext::for_element(
        model,
        Item::resource(composition, model),
        Item::resource(composition, model),
        Item::resource(&bundle, model),
    )
    .with_hooks(&hooks);
    let check = |expr: &str| {
        Expression::parse(expr)
            .unwrap()
            .evaluate_constraint(&ctx)
            .unwrap()
    };
    assert!(check("subject.resolve() is Patient"));
    assert!(check("subject.resolve().id = 'p1'"));
    assert!(check("author.resolve().is(Practitioner)"));
    assert!(check(
        "%rootResource.type = 'document' and %resource.is(Composition)"
    ));
    assert!(check("category.coding.memberOf('http://example.org/vs')"));
    assert!(check(
        "category.coding.memberOf('http://example.org/other').empty()"
    ));
    assert!(!check("text.div.htmlChecks()"));
    assert!(check("author.trace('authors').exists()"));
    assert_eq!(hooks.traced.borrow().as_slice(), ["authors:1"]);
    let conforms = Expression::parse("conformsTo('http://example.org/p')").unwrap();
    assert!(matches!(conforms.evaluate(&ctx), Err(EvalError::Hook(_))));
}

#[test]
fn parse_errors_and_constraint_result_rules() {
    assert!(matches!(
        Expression::parse("name.exists("),
        Err(ParseError::Syntax { .. })
    ));
    assert!(matches!(
        Expression::parse("name.noSuchFunction()"),
        Err(ParseError::UnknownFunction { .. })
    ));
    assert!(matches!(
        Expression::parse("name.where()"),
        Err(ParseError::Arity { .. })
    ));
    let json = r#"{"resourceType":"Patient","name":[{"family":"A"},{"family":"B"}]}"#;
    let node = doc(json);
    let ctx = EvalContext::new(model(), &node);
    // A single non-boolean item satisfies an invariant, an empty result
    // fails it (as Java's convertToBoolean); several items are an error.
    assert!(
        !Expression::parse("telecom")
            .unwrap()
            .evaluate_constraint(&ctx)
            .unwrap()
    );
    assert!(
        Expression::parse("name.first()")
            .unwrap()
            .evaluate_constraint(&ctx)
            .unwrap()
    );
    assert!(
        Expression::parse("name")
            .unwrap()
            .evaluate_constraint(&ctx)
            .is_err()
    );
}

#[test]
fn distinctness_is_linear_on_large_bundles() {
    // bdl-7 over 50 000 entries: pairwise comparison would take minutes.
    let entries: Vec<String> = (0..50_000)
        .map(|i| {
            format!(
                r#"{{"fullUrl":"urn:uuid:{i}","resource":{{"resourceType":"Basic","id":"b{i}"}}}}"#
            )
        })
        .collect();
    let json = format!(
        r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
        entries.join(",")
    );
    let bdl_7 = "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()";
    // A bounded wait, not a timing assert: the evaluations run on their own
    // thread and must be done within 30 s (their cost is benchmarked in
    // ehds-benches).
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        assert!(holds(&json, bdl_7));
        assert!(holds(&json, "entry.resource.id.distinct().count() = 50000"));
        assert!(holds(
            &json,
            "(entry.fullUrl | entry.fullUrl).count() = 50000"
        ));
        let _ = done.send(());
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the distinctness checks hold, within 30 s");
}

#[test]
fn extreme_numbers_are_empty_or_errors_never_panics() {
    let model = model();
    let node = doc(
        r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":0e2147483647},"component":[{"code":{"text":"y"},"valueInteger":-9223372036854775808}]}"#,
    );
    let ctx = EvalContext::new(model, &node);
    for expr in [
        "-(-9223372036854775807 - 1)",
        "(-9223372036854775807 - 1) div -1",
        "(-9223372036854775807 - 1) mod -1",
        "9223372036854775807 + 1",
        "@2020-01-01 + 9223372036854775807 days",
        "@2020-01-01T00:00:00Z + 9223372036854775807 'ms'",
        "@2020-01-01T00:00:00Z - 400000000000000 hours",
        "@T10:00 + 9223372036854775807 minutes",
        "1 '10*127' = 1 '10*126'",
        "value.value = 0",
        "component.value.abs()",
        "1e400.toString()",
        "99999999999999999999999999999999999999.0 * 99999999999999999999999999999999999999.0",
        "(1.0 / 3).round(100)",
    ] {
        // Empty, a value or an error: anything but a panic.
        if let Ok(e) = Expression::parse(expr) {
            let _ = e.evaluate(&ctx);
        }
    }
}

#[test]
fn parsed_expressions_and_the_model_are_shareable_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Expression>();
    shareable::<Model>();
}

/// `hasValue() or …` is recognised (the form of ele-1), and only that form.
#[test]
fn expressions_true_whenever_the_context_has_a_value() {
    let ele1 = ehds_fhirpath::Expression::parse("hasValue() or (children().count() > id.count())")
        .unwrap();
    assert!(ele1.is_true_when_context_has_value());
    for other in [
        "hasValue() and (children().count() > id.count())",
        "(children().count() > id.count()) or hasValue()",
        "value.hasValue() or id.exists()",
        "hasValue()",
    ] {
        let expression = ehds_fhirpath::Expression::parse(other).unwrap();
        assert!(!expression.is_true_when_context_has_value(), "{other}");
    }
}

/// `now()` and `today()` read the context's clock when one is set (the
/// validator's `ValidationOptions::now`), so a verdict on a date does not
/// depend on the day it is given; else the system clock.
#[test]
fn now_and_today_read_the_contexts_clock() {
    let node = doc(r#"{"resourceType":"Patient","birthDate":"2026-06-24"}"#);
    // 2026-06-25T00:00:00Z.
    let fixed = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_782_345_600);
    let ctx = EvalContext::new(model(), &node).with_now(Some(fixed));
    let holds_at = |expr: &str| {
        Expression::parse(expr)
            .unwrap()
            .evaluate_constraint(&ctx)
            .unwrap()
    };
    assert!(holds_at("today() = @2026-06-25"));
    assert!(holds_at("birthDate < today()"));
    assert!(holds_at("now() < @2026-06-25T00:00:01.000Z"));
    assert!(!holds_at("birthDate > today()"));
    // The system clock is later than the fixed one.
    assert!(holds(
        r#"{"resourceType":"Patient"}"#,
        "today() > @2026-06-24"
    ));
}
