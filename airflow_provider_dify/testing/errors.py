"""Errors the emulator answers with, in Dify's envelope, and a small pydantic-like payload validator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PYDANTIC_DOCS = "https://errors.pydantic.dev/2.12/v/"

NOT_FOUND_HTML = (
    "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
    "<p>The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again.</p>\n"
)


class ApiError(Exception):
    """
    An error answer: HTTP status plus Dify's ``{"code", "message", "status"}`` body (or a custom body).

    :param status: HTTP status code.
    :param code: Dify error code, e.g. ``not_found``.
    :param message: human-readable message, matched literally by clients.
    :param body: a body to send instead of the standard envelope (e.g. ``{"error": ...}``).
    :param headers: extra response headers.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        self.headers = dict(headers or {})

    def to_body(self) -> Any:
        """The JSON body of the answer."""
        if self.body is not None:
            return self.body
        return {"code": self.code, "message": self.message, "status": self.status}


def not_found(message: str) -> ApiError:
    """404 ``not_found`` with the given message."""
    return ApiError(404, "not_found", message)


def invalid_param(message: str) -> ApiError:
    """400 ``invalid_param`` (Dify's answer to any ``ValueError``)."""
    return ApiError(400, "invalid_param", message)


def forbidden(message: str) -> ApiError:
    """403 ``forbidden`` with the given message."""
    return ApiError(403, "forbidden", message)


def internal_error() -> ApiError:
    """500 ``unknown``: Dify's answer to an unexpected exception."""
    return ApiError(
        500,
        "unknown",
        "Internal Server Error",
        body={"message": "Internal Server Error", "code": "unknown", "status": 500},
    )


# --------------------------------------------------------------------------------------------------
# pydantic-like validation
# --------------------------------------------------------------------------------------------------


@dataclass
class FieldError:
    """
    One validation error, formatted like pydantic v2.

    :param loc: dotted location, e.g. ``tag_ids.0``.
    :param msg: the message.
    :param type: pydantic's error type, e.g. ``string_type``.
    :param value: the offending input.
    """

    loc: str
    msg: str
    type: str
    value: Any

    def render(self) -> str:
        """The error's lines in pydantic's ``str(ValidationError)`` format."""
        value = _short_repr(self.value)
        lines = [self.loc] if self.loc else []
        lines.append(
            f"  {self.msg} [type={self.type}, input_value={value}, input_type={type(self.value).__name__}]"
        )
        lines.append(f"    For further information visit {PYDANTIC_DOCS}{self.type}")
        return "\n".join(lines)


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) > 50:
        text = text[:25] + "..." + text[-24:]  # pydantic's cut, as Dify 1.16.1's answers show it
    return text


def validation_message(model: str, errors: Sequence[FieldError]) -> str:
    """``N validation error(s) for Model`` followed by each error, as pydantic prints it."""
    noun = "error" if len(errors) == 1 else "errors"
    return "\n".join([f"{len(errors)} validation {noun} for {model}", *(error.render() for error in errors)])


@dataclass
class F:
    """
    A field of a payload model.

    :param name: key in the JSON object.
    :param kind: ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``str_list``, ``model``,
        ``model_list`` or ``any``.
    :param required: the key must be present (``None`` is then checked against ``nullable``).
    :param nullable: ``None`` is accepted.
    :param min_len: minimal length for strings and lists.
    :param max_len: maximal length for strings and lists.
    :param choices: allowed values (a ``Literal``).
    :param fields: sub-fields for ``model`` and ``model_list``.
    :param default: value used when the key is absent.
    """

    name: str
    kind: str = "any"
    required: bool = False
    nullable: bool = True
    min_len: int | None = None
    max_len: int | None = None
    choices: tuple[Any, ...] | None = None
    fields: tuple[F, ...] = field(default_factory=tuple)
    default: Any = None


def _literal_text(choices: tuple[Any, ...]) -> str:
    items = [repr(choice) for choice in choices]
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]


def _check_value(spec: F, value: Any, loc: str, errors: list[FieldError]) -> Any:
    if value is None:
        if spec.nullable:
            return None
        kind_messages = {
            "str": ("Input should be a valid string", "string_type"),
            "int": ("Input should be a valid integer", "int_type"),
            "float": ("Input should be a valid number", "float_type"),
            "bool": ("Input should be a valid boolean", "bool_type"),
            "list": ("Input should be a valid list", "list_type"),
            "str_list": ("Input should be a valid list", "list_type"),
            "model_list": ("Input should be a valid list", "list_type"),
            "dict": ("Input should be a valid dictionary", "dict_type"),
            "model": ("Input should be a valid dictionary or instance of a model", "model_type"),
        }
        msg, typ = kind_messages.get(spec.kind, ("Input should not be None", "none_forbidden"))
        errors.append(FieldError(loc, msg, typ, value))
        return None
    kind = spec.kind
    if spec.choices is not None:
        if value not in spec.choices or isinstance(value, bool) != any(
            isinstance(c, bool) for c in spec.choices
        ):
            errors.append(
                FieldError(loc, f"Input should be {_literal_text(spec.choices)}", "literal_error", value)
            )
            return None
        return value
    if kind == "str":
        if not isinstance(value, str):
            errors.append(FieldError(loc, "Input should be a valid string", "string_type", value))
            return None
        if spec.min_len is not None and len(value) < spec.min_len:
            unit = "character" if spec.min_len == 1 else "characters"
            errors.append(
                FieldError(
                    loc, f"String should have at least {spec.min_len} {unit}", "string_too_short", value
                )
            )
        if spec.max_len is not None and len(value) > spec.max_len:
            unit = "character" if spec.max_len == 1 else "characters"
            errors.append(
                FieldError(loc, f"String should have at most {spec.max_len} {unit}", "string_too_long", value)
            )
        return value
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                errors.append(
                    FieldError(
                        loc,
                        "Input should be a valid integer, unable to parse string as an integer",
                        "int_parsing",
                        value,
                    )
                )
                return None
        errors.append(FieldError(loc, "Input should be a valid integer", "int_type", value))
        return None
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        errors.append(FieldError(loc, "Input should be a valid number", "float_type", value))
        return None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in (0, 1) or (
            isinstance(value, str) and value.lower() in ("true", "false", "0", "1", "yes", "no")
        ):
            return str(value).lower() in ("1", "true", "yes")
        errors.append(FieldError(loc, "Input should be a valid boolean", "bool_type", value))
        return None
    if kind in ("list", "str_list", "model_list"):
        if not isinstance(value, list):
            errors.append(FieldError(loc, "Input should be a valid list", "list_type", value))
            return None
        if spec.min_len is not None and len(value) < spec.min_len:
            unit = "item" if spec.min_len == 1 else "items"
            errors.append(
                FieldError(
                    loc,
                    f"List should have at least {spec.min_len} {unit} after validation, not {len(value)}",
                    "too_short",
                    value,
                )
            )
        if spec.max_len is not None and len(value) > spec.max_len:
            unit = "item" if spec.max_len == 1 else "items"
            errors.append(
                FieldError(
                    loc,
                    f"List should have at most {spec.max_len} {unit} after validation, not {len(value)}",
                    "too_long",
                    value,
                )
            )
        if kind == "str_list":
            out = []
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    errors.append(
                        FieldError(f"{loc}.{index}", "Input should be a valid string", "string_type", item)
                    )
                else:
                    out.append(item)
            return out
        if kind == "model_list":
            return [
                _check_model(spec.fields, item, f"{loc}.{index}", errors) for index, item in enumerate(value)
            ]
        return value
    if kind == "dict":
        if not isinstance(value, dict):
            errors.append(FieldError(loc, "Input should be a valid dictionary", "dict_type", value))
            return None
        return value
    if kind == "model":
        return _check_model(spec.fields, value, loc, errors)
    return value


def _check_model(specs: Sequence[F], data: Any, prefix: str, errors: list[FieldError]) -> dict[str, Any]:
    if not isinstance(data, dict):
        errors.append(
            FieldError(
                prefix, "Input should be a valid dictionary or instance of a model", "model_type", data
            )
        )
        return {}
    out: dict[str, Any] = {}
    for spec in specs:
        loc = f"{prefix}.{spec.name}" if prefix else spec.name
        if spec.name not in data:
            if spec.required:
                errors.append(FieldError(loc, "Field required", "missing", data))
            else:
                out[spec.name] = spec.default() if callable(spec.default) else spec.default
            continue
        out[spec.name] = _check_value(spec, data[spec.name], loc, errors)
    return out


def validate(model: str, specs: Sequence[F], data: Any) -> dict[str, Any]:
    """
    Check ``data`` against ``specs`` like a pydantic model named ``model`` would.

    :return: the known keys with defaults filled in.
    :raises ApiError: 400 ``invalid_param`` with pydantic's message text.
    """
    errors: list[FieldError] = []
    out = _check_model(specs, data, "", errors)
    if errors:
        raise invalid_param(validation_message(model, errors))
    return out


def validation_errors(model: str, specs: Sequence[F], data: Any) -> tuple[dict[str, Any], str | None]:
    """Like :func:`validate` but return ``(values, message_or_None)`` instead of raising."""
    errors: list[FieldError] = []
    out = _check_model(specs, data, "", errors)
    return out, (validation_message(model, errors) if errors else None)
