/** @jsxImportSource hono/jsx */
import type { FieldErrors } from "../forms";

/**
 * A field's message on the grid row below it (a `grid-form` is label | input per row); its id,
 * `<prefix>-<name>-error`, is what the input's aria-describedby points at.
 */
export function GridFieldError(props: { prefix: string; name: string; errors?: FieldErrors }) {
  const message = props.errors?.[props.name];
  return message ? (
    <>
      <span></span>
      <small id={`${props.prefix}-${props.name}-error`} class="field-error" data-field-error={props.name}>
        {message}
      </small>
    </>
  ) : null;
}

/** aria-invalid and aria-describedby of a grid form's field: its hint (an element id), then its error. */
export function invalidAttrs(prefix: string, name: string, errors: FieldErrors | undefined, hint?: string) {
  const described = [hint ?? "", errors?.[name] ? `${prefix}-${name}-error` : ""].filter(Boolean).join(" ");
  return { "aria-invalid": errors?.[name] ? "true" : undefined, "aria-describedby": described || undefined };
}
