import { useTestMysql } from "../support/mariadb.js";
import { featuresSuite } from "./features-suite.js";

const mysql = useTestMysql();
featuresSuite("mysql", (name) => mysql().database(name));
