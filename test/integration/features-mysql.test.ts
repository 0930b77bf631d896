import { after, before } from "node:test";
import { startTestMysql, type TestMysql } from "../support/mariadb.js";
import { featuresSuite } from "./features-suite.js";

let mysql: TestMysql;
before(async () => {
  mysql = await startTestMysql();
});
after(async () => {
  await mysql?.stop();
});
featuresSuite("mysql", (name) => mysql.database(name));
