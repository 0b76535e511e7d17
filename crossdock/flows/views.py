"""The read side of the template catalog: summaries and details as API/CLI schemas."""

from __future__ import annotations

from crossdock.flows.catalog import Template, catalog, get_template
from crossdock.flows.schemas import BindingOut, TemplateOut, TemplateSummary


def template_out(template: Template) -> TemplateOut:
    return TemplateOut(
        name=template.name,
        version=template.version,
        title=template.title,
        description=template.description.strip(),
        params=[p.public() for p in template.params],
        bindings=[
            BindingOut(role=b.role, system=b.system, required=b.required, description=b.description)
            for b in template.bindings
        ],
        cases=[dict(c) for c in template.cases],
        definition=template.definition,
    )


def list_templates() -> list[TemplateSummary]:
    out = []
    for name, versions in sorted(catalog().items()):
        latest = versions[max(versions)]
        out.append(
            TemplateSummary(
                name=name,
                title=latest.title,
                description=latest.description.strip(),
                versions=sorted(versions),
                latest=latest.version,
                params=[p.public() for p in latest.params],
            )
        )
    return out


def show_template(name: str, version: int | None = None) -> TemplateOut:
    return template_out(get_template(name, version))
