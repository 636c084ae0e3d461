'use strict';
// serverless.yml's home-region plugin. One region of a deployment (custom.home: `--param home=<region>`, else the
// policy's first source region) runs the scheduled work over every region; every other region's stack holds only
// what replication needs there. In those stacks the functions and resources that custom.homeOnly names are left out
// before anything is bundled or compiled, so their schedules, roles and alarms never reach the template.

/** Whether a stack in `region` is the home stack. */
function isHome(region, home) {
  return region === home;
}

/** The names custom.homeOnly lists, as { functions, resources }. */
function homeOnly(custom) {
  const listed = (custom && custom.homeOnly) || {};
  return { functions: listed.functions || [], resources: listed.resources || [] };
}

class HomeRegionPlugin {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = { initialize: () => this.apply() };
  }

  apply() {
    const service = this.serverless.service;
    const region = service.provider.region;
    const home = service.custom && service.custom.home;
    if (typeof home !== 'string' || !/^[a-z]{2}(-[a-z]+)+-\d$/.test(home)) {
      throw new Error(`custom.home must be a region (--param home=<region>), got ${JSON.stringify(home)}`);
    }
    if (isHome(region, home)) return;
    const { functions, resources } = homeOnly(service.custom);
    for (const name of functions) {
      if (!service.functions[name]) throw new Error(`custom.homeOnly names function ${name}, which is not declared`);
      delete service.functions[name];
    }
    const declared = (service.resources && service.resources.Resources) || {};
    for (const name of resources) {
      if (!declared[name]) throw new Error(`custom.homeOnly names resource ${name}, which is not declared`);
      delete declared[name];
    }
  }
}

module.exports = HomeRegionPlugin;
module.exports.isHome = isHome;
module.exports.homeOnly = homeOnly;
