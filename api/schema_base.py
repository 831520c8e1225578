"""Building blocks of the API's models, apart so that modules of models can share them:
``api.schemas`` (re-exported there) and ``api.variant_schemas`` (A/B variants)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from dispatcher.meta.components import Components, as_json


class Input(BaseModel):
    """A request body: unknown fields are refused (a typo is not silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TemplateIn(Input):
    """A message template as approved in WhatsApp Manager."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?$")]
    components: Components = Field(
        default_factory=list,
        description="Meta's template components, as the Cloud API's send takes them "
        "(dispatcher/meta/components.py); ``{{name}}`` placeholders are filled from a "
        "recipient's variables when they are an object.",
    )

    def stored(self) -> dict[str, Any]:
        """As the campaign keeps it: Meta's shape, fields not given left out."""
        return {
            "name": self.name,
            "language": self.language,
            "components": as_json(self.components),
        }
