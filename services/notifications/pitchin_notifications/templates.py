"""Renders planned messages from the package's Jinja templates (text, HTML, subject)."""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pitchin_notifications.domain.messages import PlannedMessage


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str | None


class Renderer:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("pitchin_notifications", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
        )

    def render(self, planned: PlannedMessage) -> RenderedMessage:
        name = planned.template
        return RenderedMessage(
            subject=self.env.get_template(f"{name}.subject.txt").render(planned.context).strip(),
            text=self.env.get_template(f"{name}.txt").render(planned.context),
            html=self.env.get_template(f"{name}.html").render(planned.context),
        )
