import { Parser } from '@asyncapi/parser'
import { Ajv, type ValidateFunction } from 'ajv'
import ajvFormats from 'ajv-formats'

// Validators for the AsyncAPI document as a client would use it: the document is checked by the
// AsyncAPI parser, and each message's payload schema (with its $refs, as written in the document)
// is compiled by ajv in strict mode.

/** Parses an AsyncAPI document; every diagnostic of error or warning severity, as text. */
export async function asyncApiProblems(document: unknown): Promise<string[]> {
  const { diagnostics } = await new Parser().parse(JSON.stringify(document))
  // Spectral severities: 0 error, 1 warning, 2 information, 3 hint.
  return diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.path.join('/')}: ${d.message}`)
}

type Json = Record<string, any>

/**
 * A copy of the schema in which every object schema that does not say otherwise refuses fields
 * it does not name: the document tells clients to ignore unknown fields, but what plantwatt sends
 * today must be documented field by field.
 */
function closeObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeObjects)
  if (typeof schema !== 'object' || schema === null) return schema
  const out: Json = {}
  for (const [key, value] of Object.entries(schema)) {
    out[key] =
      key === 'properties'
        ? Object.fromEntries(Object.entries(value as Json).map(([k, v]) => [k, closeObjects(v)]))
        : closeObjects(value)
  }
  if (out.type === 'object' && out.properties !== undefined && out.additionalProperties === undefined) {
    out.additionalProperties = false
  }
  return out
}

/** Payload validators of the document's messages, by message name (components/messages). */
export function payloadValidators(document: Json, options: { closed?: boolean } = {}): Map<string, ValidateFunction> {
  const ajv = new Ajv({ strict: true, allErrors: true })
  // ajv-formats is CommonJS: its plugin is the module's `default` export.
  ajvFormats.default(ajv)
  const schemas = options.closed ? (closeObjects(document.components.schemas) as Json) : document.components.schemas
  // The payloads refer to #/components/schemas/…; give ajv that one part of the document.
  ajv.addVocabulary(['components'])
  ajv.addSchema({ $id: 'asyncapi', components: { schemas } })
  const validators = new Map<string, ValidateFunction>()
  for (const [name, message] of Object.entries<Json>(document.components.messages)) {
    const target = String(message.payload.$ref)
    validators.set(name, ajv.compile({ $ref: `asyncapi${target}` }))
  }
  return validators
}

/** Errors of one payload against one message of the document, as text (empty: valid). */
export function payloadErrors(validators: Map<string, ValidateFunction>, message: string, payload: unknown): string[] {
  const validate = validators.get(message)
  if (validate === undefined) return [`no message ${message} in the document`]
  if (validate(payload)) return []
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`)
}
