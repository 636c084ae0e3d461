import { tagSet, type XmlElements } from './ec2-xml.ts';
import { isPublic, type LaunchPermissionEntry, type TwinImage } from './state.ts';

/** An image as DescribeImages prints it (element names from the EC2 model's `Image` shape). */
export function imageXml(image: TwinImage): XmlElements {
  return {
    imageId: image.imageId,
    imageLocation: image.imageLocation,
    imageState: image.state,
    imageOwnerId: image.ownerId,
    creationDate: image.creationDate,
    isPublic: isPublic(image),
    productCodes: image.productCodes.length
      ? image.productCodes.map((p) => ({ productCode: p.productCodeId, type: p.productCodeType }))
      : undefined,
    architecture: image.architecture,
    imageType: 'machine',
    sriovNetSupport: 'simple',
    enaSupport: true,
    platformDetails: 'Linux/UNIX',
    usageOperation: 'RunInstances',
    imageOwnerAlias: image.imageOwnerAlias,
    name: image.name,
    description: image.description,
    rootDeviceType: image.rootDeviceType,
    rootDeviceName: image.rootDeviceName,
    // DescribeImages shows whether a volume is encrypted, not under which key: the key is the snapshot's.
    blockDeviceMapping: image.blockDeviceMappings.map((m) => ({
      deviceName: m.deviceName,
      virtualName: m.virtualName,
      ebs: m.ebs && {
        deleteOnTermination: m.ebs.deleteOnTermination,
        snapshotId: m.ebs.snapshotId,
        volumeSize: m.ebs.volumeSize,
        volumeType: m.ebs.volumeType,
        encrypted: m.ebs.encrypted,
      },
    })),
    virtualizationType: image.virtualizationType,
    tagSet: tagSet(image.tags),
    hypervisor: 'xen',
    stateReason: image.stateReason,
    bootMode: 'uefi-preferred',
    deprecationTime: image.deprecationTime,
    sourceInstanceId: image.sourceInstanceId,
    deregistrationProtection: image.deregistrationProtection,
    lastLaunchedTime: image.lastLaunchedTime,
    sourceImageId: image.sourceImageId,
    sourceImageRegion: image.sourceImageRegion,
  };
}

export function launchPermissionXml(permission: LaunchPermissionEntry): XmlElements {
  return {
    userId: permission.userId,
    group: permission.group,
    organizationArn: permission.organizationArn,
    organizationalUnitArn: permission.organizationalUnitArn,
  };
}
