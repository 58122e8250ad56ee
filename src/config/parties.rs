//! Who processes for whom, for the Art. 30(2) record (`blobseal records`): the optional top-level
//! `processor:` block (the company running blobseal) and each tenant's `controller:` block (the customer
//! on whose behalf it stores data). Descriptive only: nothing here changes what blobseal does.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::validate::Ctx;
use super::yaml::Str;

/// A party named in the record.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Party {
    pub name: String,
    /// Contact details (address, e-mail, phone) as one text.
    pub contact: String,
    /// The data protection officer's name and contact, if one is designated.
    pub dpo: Option<String>,
    /// The representative in the Union (Art. 27), if any.
    pub representative: Option<String>,
}

/// A controller and what it has the processor do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Controller {
    pub party: Party,
    /// Why the controller processes the data (its purposes), as it told the processor.
    pub purposes: Vec<String>,
    /// Categories of personal data in its objects (e.g. "call recordings", "scanned contracts").
    pub data_categories: Vec<String>,
    /// Categories of data subjects (e.g. "customers", "employees").
    pub subject_categories: Vec<String>,
}

/// `processor:` / `controller:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParty {
    pub name: Str,
    pub contact: Str,
    pub dpo: Option<Str>,
    pub representative: Option<Str>,
    #[serde(default)]
    pub purposes: Vec<Str>,
    #[serde(default)]
    pub data_categories: Vec<Str>,
    #[serde(default)]
    pub subject_categories: Vec<Str>,
}

fn text(cx: &mut Ctx<'_>, s: &Str, what: &str) -> Option<String> {
    cx.checked(s, what, |v| !v.trim().is_empty(), "must not be empty")
}

fn party(cx: &mut Ctx<'_>, raw: &RawParty, what: &str) -> Option<Party> {
    let name = text(cx, &raw.name, &format!("{what}.name"));
    let contact = text(cx, &raw.contact, &format!("{what}.contact"));
    let dpo = raw.dpo.as_ref().and_then(|s| text(cx, s, &format!("{what}.dpo")));
    let representative = raw.representative.as_ref().and_then(|s| text(cx, s, &format!("{what}.representative")));
    Some(Party { name: name?, contact: contact?, dpo, representative })
}

/// The processor (top level); purposes and categories belong to controllers.
pub(super) fn processor(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawParty>>) -> Option<Party> {
    let raw = raw?;
    for (list, name) in [
        (&raw.value.purposes, "purposes"),
        (&raw.value.data_categories, "data_categories"),
        (&raw.value.subject_categories, "subject_categories"),
    ] {
        if let Some(first) = list.first() {
            cx.error(
                first.referenced,
                format!("processor.{name}: purposes and categories belong to each tenant's controller"),
            );
        }
    }
    party(cx, &raw.value, "processor")
}

/// A tenant's controller.
pub(super) fn controller(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawParty>>) -> Option<Controller> {
    let raw = raw?;
    let list = |cx: &mut Ctx<'_>, items: &[Str], what: &str| -> Vec<String> {
        items.iter().filter_map(|s| text(cx, s, what)).collect()
    };
    let purposes = list(cx, &raw.value.purposes, "controller.purposes");
    let data_categories = list(cx, &raw.value.data_categories, "controller.data_categories");
    let subject_categories = list(cx, &raw.value.subject_categories, "controller.subject_categories");
    Some(Controller { party: party(cx, &raw.value, "controller")?, purposes, data_categories, subject_categories })
}
