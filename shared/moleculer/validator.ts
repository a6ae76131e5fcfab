import { Validators } from 'moleculer';
import { Kind, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

type Checker = Validators.Base.CheckerFunction;
const isTypeBox = (s: unknown): s is TSchema => !!s && typeof s === 'object' && Kind in (s as object);

/**
 * Moleculer validator for TypeBox schemas: action `params` are the same TypeBox objects the
 * gateway uses for HTTP bodies, so one schema is the single source of truth. Moleculer's own
 * internal services ($node) declare fastest-validator schemas; those go to the stock validator.
 */
export class TypeBoxValidator extends Validators.Base {
  private readonly fastest = new Validators.Fastest();

  constructor() {
    super({});
  }

  override init(broker: Parameters<Validators.Base['init']>[0]): void {
    super.init(broker);
    this.fastest.init(broker);
  }

  override compile(schema: Record<string, any>): Checker {
    if (!isTypeBox(schema)) return this.fastest.compile(schema);
    const checker = TypeCompiler.Compile(schema);
    // Moleculer's base middleware accepts `true` or a list of problems (typed as boolean upstream).
    const check = (params: Record<string, unknown>) => {
      if (checker.Check(params)) return true;
      return [...checker.Errors(params)].slice(0, 20).map((e) => ({ type: 'invalid', field: e.path || '/', message: e.message, actual: e.value }));
    };
    return check as unknown as Checker;
  }

  override validate(params: Record<string, any>, schema: Record<string, any>): boolean {
    if (!isTypeBox(schema)) return this.fastest.validate(params, schema);
    return TypeCompiler.Compile(schema).Check(params);
  }

  override convertSchemaToMoleculer(schema: any): Record<string, any> {
    return schema;
  }
}
