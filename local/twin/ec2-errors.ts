import { TwinServiceError } from './http.ts';

/** Duck-typed so errors thrown by other twin modules with a `code` and `status` map the same way. */
export function errorCode(error: unknown): { code: string; message: string; status: number } | undefined {
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string') {
    const status = 'status' in error && typeof error.status === 'number' ? error.status : 400;
    const message = 'message' in error && typeof error.message === 'string' ? error.message : error.code;
    return { code: error.code, message, status };
  }
  return undefined;
}

const ID_PATTERN = /^[0-9a-f]{8}([0-9a-f]{9})?$/;

const MALFORMED: Record<string, string> = {
  ami: 'InvalidAMIID.Malformed',
  snap: 'InvalidSnapshotID.Malformed',
  i: 'InvalidInstanceID.Malformed',
};

/** Rejects ids that are not `<prefix>-` followed by 8 or 17 hex digits, with EC2's code for that resource. */
export function checkId(prefix: 'ami' | 'snap' | 'i', id: string): string {
  const head = `${prefix}-`;
  if (!id.startsWith(head) || !ID_PATTERN.test(id.slice(head.length))) {
    throw new TwinServiceError(MALFORMED[prefix] ?? 'InvalidID', `Invalid id: "${id}" (expecting "${head}...")`);
  }
  return id;
}
