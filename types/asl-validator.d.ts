declare module 'asl-validator' {
  export interface AslValidationError {
    'Error code': string;
    Message: string;
    path?: string;
  }
  export interface AslValidatorOptions {
    checkPaths?: boolean;
    checkArn?: boolean;
  }
  export interface AslValidationResult {
    isValid: boolean;
    errors: AslValidationError[];
    errorsText(separator?: string): string;
  }
  export default function validator(definition: unknown, options?: AslValidatorOptions): AslValidationResult;
}
