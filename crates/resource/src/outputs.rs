//! Output parameters of a resource template (Argo's `SaveResourceParameters`): each parameter
//! with `valueFrom.jsonPath` or `valueFrom.jqFilter` gets its value from the object as the server
//! has it once the conditions held; when there is no object (a `get` with `--ignore-not-found`
//! found none) each gets its `valueFrom.default`, or the empty string.

use argoexec_template::Parameter;
use serde_json::Value;

use crate::error::Error;
use crate::jq::jq_filter;
use crate::jsonpath::Template;

/// Whether any parameter reads the object.
pub fn reads_object(parameters: &[Parameter]) -> bool {
    parameters.iter().any(|p| {
        p.value_from
            .as_ref()
            .is_some_and(|v| v.json_path.is_some() || v.jq_filter.is_some())
    })
}

/// Sets the value of every parameter that has a `valueFrom`, from `object`.
pub fn set_outputs(parameters: &mut [Parameter], object: Option<&Value>) -> Result<(), Error> {
    for parameter in parameters {
        let Some(from) = &parameter.value_from else {
            continue;
        };
        let Some(object) = object else {
            let default = from
                .default
                .as_ref()
                .map(|d| d.text().into_owned())
                .unwrap_or_default();
            parameter.set_value(default);
            continue;
        };
        let value = match (&from.json_path, &from.jq_filter) {
            (Some(path), _) if !path.is_empty() => Template::parse(path)
                .map_err(|source| Error::JsonPath {
                    name: parameter.name.clone(),
                    source,
                })?
                .render(object),
            (_, Some(filter)) if !filter.is_empty() => {
                jq_filter(filter, object).map_err(|source| Error::Jq {
                    name: parameter.name.clone(),
                    source,
                })?
            }
            _ => continue,
        };
        tracing::info!(name = %parameter.name, value, "Saved output parameter");
        parameter.set_value(value);
    }
    Ok(())
}
